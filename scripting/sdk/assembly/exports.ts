// The exports ABI v1 requires besides `tick` and `memory` (docs/scripting-abi.md).
//
// build.mjs compiles this file as a second entry file next to the script: AssemblyScript
// exports the top-level exports of every entry file from the module, so scripts only write
// `export function tick(): void`. It imports the SDK by its package name, exactly as scripts
// do, so both resolve to the same module (~lib/astroboids/index.ts) and share one pair of
// blocks.

import { SENSOR_PTR, COMMAND_PTR } from "astroboids";

/** The ABI version this SDK speaks. */
export function astroboids_abi(): i32 {
  return 1;
}

/** Address of the 1,344-byte sensor block. */
export function sensor_ptr(): usize {
  return SENSOR_PTR;
}

/** Address of the 16-byte command block. */
export function command_ptr(): usize {
  return COMMAND_PTR;
}
