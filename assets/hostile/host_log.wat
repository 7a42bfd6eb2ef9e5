;; host_log: the log host call. Each loop iteration logs a 1-byte line and a 256-byte line
;; (the longest kept). Log calls are priced (1,000 fuel + 1 per byte), so this measures whether
;; that price covers the host's work: the call, the bounds check, the copy and the string
;; (for the first 16 lines of a tick; later lines are counted and dropped).
(module
  (import "astroboids" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1 16)
  (data (i32.const 256) "!")
  (data (i32.const 512)
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"
    "mnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwx"
    "yzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij"
    "klmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv")
  (func (export "astroboids_abi") (result i32) i32.const 1)
  (func (export "sensor_ptr") (result i32) i32.const 1024)
  (func (export "command_ptr") (result i32) i32.const 4096)
  (func (export "tick")
    (loop $forever
      (call $log (i32.const 256) (i32.const 1))
      (call $log (i32.const 512) (i32.const 256))
      (br $forever))))
