;; start_heavy: a start function that fills its memory with `memory.fill`, over and over,
;; forever: it must run out of start fuel, and the time that takes is the question. It starts
;; with one page (the pages a module starts with are paid from the start fuel, 1 fuel per byte,
;; so a module starting with the whole 1 MiB is refused at upload) and tries to grow to the
;; limit first (each page asked for costs the same). `tick` does the same, should a host ever
;; start it.
(module
  (memory (export "memory") 1 16)
  (func $fill
    (drop (memory.grow (i32.const 15)))
    (loop $forever
      (memory.fill (i32.const 0) (i32.const 0xa5) (i32.mul (memory.size) (i32.const 65536)))
      (br $forever)))
  (func $start (call $fill))
  (start $start)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick") (call $fill)))
