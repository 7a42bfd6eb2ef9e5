//! `astroboids play`: the windowed client for players (eframe/egui with the glow renderer, so it
//! runs on CPU-only machines under Xvfb and Mesa's llvmpipe). It knows the protocol only: the
//! map is drawn from live snapshots, as `astroboids watch` draws its terminal map.
//!
//! - [`camera`]: where the view looks and how far it is zoomed; world to screen and back.
//! - [`model`]: what the window shows, fed by what the network thread hears ([`NetUpdate`]),
//!   with time passed in: no I/O.
//! - [`map`] and [`app`]: drawing and input, on an `egui::Ui` (the headless tests drive them
//!   with `egui_kittest`, no window).
//! - [`login`]: the login and registration form, checked field by field.
//! - [`net`]: the session thread (connect to any of the servers, authenticate with the saved
//!   token, subscribe, ask for the fleet's status every second, reconnect).
//! - [`window`]: the eframe shell, and `--screenshot FILE` (render, write what the window
//!   shows as a PNG, exit).

pub mod app;
pub mod camera;
pub mod design;
pub mod login;
pub mod map;
pub mod model;
pub mod net;
pub mod replay;
pub mod window;

pub use model::{Command, NetUpdate, PlayModel};
