;; start_heavy: a start function that fills the whole 1 MiB memory with `memory.fill`, over and
;; over, forever: it must run out of start fuel, and the time that takes is the question (start
;; fuel is 50 times a tick's average). `tick` does the same, should a host ever start it.
(module
  (memory (export "memory") 16 16)
  (func $start
    (loop $forever
      (memory.fill (i32.const 0) (i32.const 0xa5) (i32.const 1048576))
      (br $forever)))
  (start $start)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick")
    (loop $forever
      (memory.fill (i32.const 0) (i32.const 0xa5) (i32.const 1048576))
      (br $forever))))
