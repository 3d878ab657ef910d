;; mcu-blink: an example for the MCU ABI (edge_proto::mcu), run by wasmi on microcontroller nodes.
;; Every 500 ms it toggles a (virtual) LED, logs the new state with a counter and the board's sensor 0, and
;; publishes the state on its namespace's `led` topic. It never returns: `run` loops, sleeping in between, so
;; the node's fuel budget never trips.
;;
;; Rebuild with examples/build.sh (it runs `mcu-wat` from firmware/sim).
(module
  (import "edge" "log" (func $log (param i32 i32)))
  (import "edge" "sleep_ms" (func $sleep_ms (param i32)))
  (import "edge" "sensor" (func $sensor (param i32) (result i32)))
  (import "edge" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "blink ")          ;; 0..6
  (data (i32.const 16) " led=on  ")      ;; 16..25
  (data (i32.const 32) " led=off ")      ;; 32..41
  (data (i32.const 48) " sensor=")       ;; 48..56
  (data (i32.const 64) "led")            ;; 64..67
  (data (i32.const 72) "on")             ;; 72..74
  (data (i32.const 80) "off")            ;; 80..83

  ;; Writes $n (signed) in decimal at $at; returns how many bytes.
  (func $itoa (param $n i32) (param $at i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $n) (i32.const 0))
      (then
        (i32.store8 (local.get $at) (i32.const 45))
        ;; The magnitude as unsigned: right for i32::MIN too (a board without the sensor).
        (i32.add (i32.const 1)
          (call $utoa (i32.sub (i32.const 0) (local.get $n)) (i32.add (local.get $at) (i32.const 1)))))
      (else (call $utoa (local.get $n) (local.get $at)))))

  ;; Writes $n (unsigned) in decimal at $at; returns how many bytes.
  (func $utoa (param $n i32) (param $at i32) (result i32)
    (local $len i32) (local $i i32) (local $t i32)
    ;; Count digits.
    (local.set $t (local.get $n))
    (local.set $len (i32.const 1))
    (block $done (loop $count
      (br_if $done (i32.lt_u (local.get $t) (i32.const 10)))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (br $count)))
    ;; Write them from the end.
    (local.set $i (local.get $len))
    (local.set $t (local.get $n))
    (loop $write
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $at) (local.get $i))
        (i32.add (i32.const 48) (i32.rem_u (local.get $t) (i32.const 10))))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $write (i32.gt_u (local.get $i) (i32.const 0))))
    (local.get $len))

  ;; Copies $len bytes from $from to $to.
  (func $copy (param $to i32) (param $from i32) (param $len i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $len)))
      (i32.store8 (local.get $to) (i32.load8_u (local.get $from)))
      (local.set $to (i32.add (local.get $to) (i32.const 1)))
      (local.set $from (i32.add (local.get $from) (i32.const 1)))
      (local.set $len (i32.sub (local.get $len) (i32.const 1)))
      (br $next))))

  (func (export "run")
    (local $count i32) (local $on i32) (local $len i32)
    (loop $forever
      (local.set $count (i32.add (local.get $count) (i32.const 1)))
      (local.set $on (i32.xor (local.get $on) (i32.const 1)))
      ;; "blink N led=on  sensor=S" at 256.
      (call $copy (i32.const 256) (i32.const 0) (i32.const 6))
      (local.set $len (i32.add (i32.const 6) (call $itoa (local.get $count) (i32.const 262))))
      (call $copy (i32.add (i32.const 256) (local.get $len))
        (select (i32.const 16) (i32.const 32) (local.get $on)) (i32.const 9))
      (local.set $len (i32.add (local.get $len) (i32.const 9)))
      (call $copy (i32.add (i32.const 256) (local.get $len)) (i32.const 48) (i32.const 8))
      (local.set $len (i32.add (local.get $len) (i32.const 8)))
      (local.set $len (i32.add (local.get $len)
        (call $itoa (call $sensor (i32.const 0)) (i32.add (i32.const 256) (local.get $len)))))
      (call $log (i32.const 256) (local.get $len))
      (drop (call $publish (i32.const 64) (i32.const 3)
        (select (i32.const 72) (i32.const 80) (local.get $on))
        (select (i32.const 2) (i32.const 3) (local.get $on))))
      (call $sleep_ms (i32.const 500))
      (br $forever))))
