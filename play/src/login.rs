//! The login and registration form, without I/O: what a player types (server addresses, the
//! server's certificate fingerprint, user, password) and the check that turns it into
//! [`Credentials`] or an error naming the field that is wrong. The window hands valid
//! credentials to [`crate::net::log_in`] and shows its answer here.

use std::net::SocketAddr;

use egui::{RichText, Ui};

use astroboids_net::quic::Fingerprint;

/// What the form holds.
#[derive(Debug, Clone, Default)]
pub struct LoginForm {
    /// One address, or several separated by commas (a cluster's gateways).
    pub server: String,
    pub fingerprint: String,
    pub user: String,
    pub password: String,
    /// The last error, or what is going on.
    pub status: Option<String>,
    /// A login is on its way: the buttons wait.
    pub busy: bool,
}

/// A checked form.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub servers: Vec<SocketAddr>,
    pub fingerprint: Fingerprint,
    pub user: String,
    pub password: String,
    /// Make the account first.
    pub register: bool,
}

impl LoginForm {
    /// The credentials, or what is wrong with the form.
    pub fn credentials(&self, register: bool) -> Result<Credentials, String> {
        let servers = self
            .server
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse::<SocketAddr>()
                    .map_err(|_| format!("server: {a:?} is not an address like 127.0.0.1:7777"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err("server: give the address `serve` printed (listening: ADDR)".into());
        }
        let fingerprint = self
            .fingerprint
            .trim()
            .parse::<Fingerprint>()
            .map_err(|e| format!("fingerprint: {e}"))?;
        let user = self.user.trim();
        if user.is_empty() {
            return Err("user: give a name".into());
        }
        if self.password.is_empty() {
            return Err("password: give one".into());
        }
        Ok(Credentials {
            servers,
            fingerprint,
            user: user.to_owned(),
            password: self.password.clone(),
            register,
        })
    }

    /// Draws the form; returns the credentials when a button was pressed on a valid form
    /// (an invalid one shows why instead).
    pub fn ui(&mut self, ui: &mut Ui) -> Option<Credentials> {
        ui.heading("AstroBoids");
        ui.label("Play on a server: the address and fingerprint `astroboids serve` printed.");
        let mut submitted = None;
        egui::Grid::new("login").num_columns(2).show(ui, |ui| {
            let fields: [(&str, &mut String, bool); 4] = [
                ("Server", &mut self.server, false),
                ("Fingerprint", &mut self.fingerprint, false),
                ("User", &mut self.user, false),
                ("Password", &mut self.password, true),
            ];
            for (name, value, secret) in fields {
                let label = ui.label(name);
                ui.add(
                    egui::TextEdit::singleline(value)
                        .password(secret)
                        .desired_width(480.0),
                )
                .labelled_by(label.id);
                ui.end_row();
            }
        });
        ui.horizontal(|ui| {
            ui.add_enabled_ui(!self.busy, |ui| {
                if ui.button("Log in").clicked() {
                    submitted = Some(false);
                }
                if ui.button("Register").clicked() {
                    submitted = Some(true);
                }
            });
        });
        if let Some(status) = &self.status {
            ui.label(RichText::new(status).color(crate::app::FAULT));
        }
        let register = submitted?;
        match self.credentials(register) {
            Ok(credentials) => {
                self.busy = true;
                self.status = Some(if register {
                    "registering...".into()
                } else {
                    "logging in...".into()
                });
                Some(credentials)
            }
            Err(why) => {
                self.status = Some(why);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> LoginForm {
        LoginForm {
            server: "127.0.0.1:7777, 127.0.0.1:7778".into(),
            fingerprint: "ab".repeat(32),
            user: " ada ".into(),
            password: "correct horse".into(),
            ..LoginForm::default()
        }
    }

    #[test]
    fn a_valid_form_gives_every_gateway_and_the_pin() {
        let c = form().credentials(true).unwrap();
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.user, "ada");
        assert!(c.register);
    }

    #[test]
    fn each_wrong_field_is_named() {
        let with = |f: fn(&mut LoginForm)| {
            let mut form = form();
            f(&mut form);
            form.credentials(false).unwrap_err()
        };
        assert!(with(|f| f.server = "here".into()).starts_with("server: \"here\""));
        assert!(with(|f| f.server = " ".into()).starts_with("server: "));
        assert!(with(|f| f.fingerprint = "xyz".into()).starts_with("fingerprint: "));
        assert!(with(|f| f.user = "".into()).starts_with("user: "));
        assert!(with(|f| f.password = "".into()).starts_with("password: "));
    }
}
