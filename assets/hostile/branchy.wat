;; branchy: tiny loop bodies. `(loop (br_if (local.get)))` is 2 fuel per iteration, a taken
;; conditional branch and a metering check each time: the most metering work per fuel among
;; ordinary code. The condition comes from `astroboids.random` (forced odd), so the compiler
;; cannot see that it never becomes false.
(module
  (import "astroboids" "random" (func $random (result i32)))
  (memory (export "memory") 1 16)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick") (local $one i32)
    (local.set $one (i32.or (call $random) (i32.const 1)))
    (loop $forever
      (br_if $forever (local.get $one)))))
