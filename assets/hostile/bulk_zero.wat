;; bulk_zero: instructions wasmer runs as calls into its runtime, at their smallest price:
;; zero-length `memory.fill`, `memory.copy`, `memory.init`, `table.copy`, `table.init`, the
;; drops, `memory.grow 0` and `memory.size`. Pricing bulk operations by length leaves each
;; of these at its base price, yet each still leaves compiled code.
(module
  (memory (export "memory") 1 16)
  (data $bytes "0123456789abcdef")
  (table 4 4 funcref)
  (elem $funcs func $f $f $f $f)
  (func $f)
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick")
    (loop $forever
      (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))
      (memory.copy (i32.const 0) (i32.const 8) (i32.const 0))
      (memory.init $bytes (i32.const 0) (i32.const 0) (i32.const 0))
      (table.copy (i32.const 0) (i32.const 1) (i32.const 0))
      (table.init $funcs (i32.const 0) (i32.const 0) (i32.const 0))
      (data.drop $bytes)
      (elem.drop $funcs)
      (drop (memory.grow (i32.const 0)))
      (drop (memory.size))
      (br $forever))))
