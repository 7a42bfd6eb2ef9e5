;; spin: metering overhead at its purest. `(loop (br))`: one instruction per iteration, so
;; every fuel unit is a branch plus a metering check and nothing else.
(module
  (memory (export "memory") 1 16)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick")
    (loop $forever (br $forever))))
