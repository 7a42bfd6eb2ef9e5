;; memory_grow: the start function grows memory one page at a time (`memory.grow 1`) up to
;; the 16-page limit, then keeps asking (each refused grow is still a call into the runtime)
;; until it runs out of start fuel: the script never starts. Measures start fuel against
;; time. `tick` does the same, should a host ever start it.
(module
  (memory (export "memory") 1 16)
  (func $start
    (loop $forever
      (drop (memory.grow (i32.const 1)))
      (br $forever)))
  (start $start)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick")
    (loop $forever
      (drop (memory.grow (i32.const 1)))
      (br $forever))))
