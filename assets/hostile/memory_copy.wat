;; memory_copy: `memory.copy` of 512 KiB (half the 1 MiB memory onto the other half) in a
;; loop: 512 KiB read and written per 5 fuel unless the meter prices the copy by its length.
(module
  (memory (export "memory") 16 16)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick")
    (loop $forever
      (memory.copy (i32.const 524288) (i32.const 0) (i32.const 524288))
      (br $forever))))
