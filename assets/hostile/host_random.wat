;; host_random: host calls. `astroboids.random` in a loop, 2 fuel per call (`call`, `br_if`):
;; each one leaves compiled code for the host and comes back. The outer loop only matters in
;; the 1-in-2^32 case of a zero draw.
(module
  (import "astroboids" "random" (func $random (result i32)))
  (memory (export "memory") 1 16)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick")
    (loop $forever
      (loop $draw (br_if $draw (call $random)))
      (br $forever))))
