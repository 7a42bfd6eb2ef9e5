;; memory_fill: `memory.fill` of the whole memory (16 pages = 1 MiB, the limit; declared as
;; the starting size, so no grow is needed) in a loop: 1 MiB written per 5 fuel unless the
;; meter prices the fill by its length.
(module
  (memory (export "memory") 16 16)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick")
    (loop $forever
      (memory.fill (i32.const 0) (i32.const 0x5a) (i32.const 1048576))
      (br $forever))))
