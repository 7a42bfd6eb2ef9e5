;; memory_grow_refused: `memory.grow 1` at the limit, in a loop, in `tick`. The memory starts
;; at its 16-page maximum, so every grow is refused, yet each one is still a call into
;; wasmer's runtime (4 fuel per iteration: `i32.const`, `memory.grow`, `drop`, `br`).
;; memory_grow.wat does the same in its start function, after 15 grows that succeed.
(module
  (memory (export "memory") 16 16)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick")
    (loop $forever
      (drop (memory.grow (i32.const 1)))
      (br $forever))))
