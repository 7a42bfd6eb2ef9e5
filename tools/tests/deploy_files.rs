//! The deployment files (deploy/: Dockerfile, compose.yaml, k8s/*.yaml) use only what the
//! `astroboids` binary has.
//!
//! Docker and Kubernetes do not run where this workspace is tested, so this test reads the
//! files as they would run them. Every compose service and Kubernetes container that runs the
//! image gets the argv Docker or Kubernetes would give it (the Dockerfile's ENTRYPOINT and CMD
//! unless the file overrides them), the environment (literal values, the image's ENV,
//! ConfigMaps, Secrets) and the ports it publishes or declares. Then:
//!
//! - each `astroboids ...` invocation names a command the binary has, with flags its `--help`
//!   lists, and the binary itself parses it (run with `--help` appended, the variables' values
//!   passed as their flags);
//! - each ASTROBOIDS_* and RUST_LOG variable is one that command reads (`[env: NAME=]`);
//! - UDP ports are the command's --listen port (flag, variable or default), TCP ports its
//!   metrics port; a listener is not on loopback, and metrics off loopback come with
//!   --metrics-public;
//! - the processes of one deployment agree on --nats, --etcd and --world, and reach servers the
//!   deployment defines; each deployment makes its world (`cluster create`); shard processes
//!   have member ids of their own, none of those a `cluster up` (if one makes the world instead)
//!   runs; Kubernetes Services select pods and ports that exist,
//!   and their prometheus.io/port is the pods' metrics port; NATS is configured as the bus
//!   needs (infra::NATS_MAX_PAYLOAD, JetStream, a `max_file_store` of at least one world).
//!
//! A failure names the file, the line, the service or container, the invocation and what is
//! wrong. The tests at the end feed the same reader deliberately wrong samples, so that it
//! cannot pass by finding nothing.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

use astroboids_cluster_net::bus::{MAX_BLOB_STORE_BYTES, MAX_STREAM_BYTES};
use astroboids_infra::NATS_MAX_PAYLOAD;

// ---------------------------------------------------------------------------------------------
// What the binary offers: `astroboids <path> --help`.

/// One option of a command, as its help shows it.
#[derive(Debug, Clone)]
struct Opt {
    long: String,
    short: Option<char>,
    takes_value: bool,
    env: Option<String>,
    default: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Help {
    /// In the help's order.
    commands: Vec<String>,
    options: Vec<Opt>,
    positionals: bool,
}

impl Help {
    /// clap's help: `Commands:`, `Arguments:` and `Options:` sections; an option line starts
    /// with `-` at most 6 columns in, and its text (that line and the more indented ones below)
    /// ends with `[env: NAME=]` and `[default: VALUE]` when it has them.
    fn parse(text: &str) -> Self {
        fn finish(help: &mut Help, current: &mut Option<(Opt, String)>) {
            if let Some((mut opt, text)) = current.take() {
                if let Some(at) = text.rfind("[env: ") {
                    let rest = &text[at + "[env: ".len()..];
                    let end = rest.find(['=', ']']).unwrap_or(rest.len());
                    opt.env = Some(rest[..end].to_owned());
                }
                if let Some(at) = text.rfind("[default: ") {
                    let rest = &text[at + "[default: ".len()..];
                    opt.default = rest.find(']').map(|end| rest[..end].to_owned());
                }
                help.options.push(opt);
            }
        }
        let mut help = Help::default();
        let mut section = String::new();
        let mut current: Option<(Opt, String)> = None;
        for line in text.lines() {
            if !line.is_empty() && !line.starts_with(' ') {
                finish(&mut help, &mut current);
                section = line.trim_end().to_owned();
                continue;
            }
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            match section.as_str() {
                "Commands:" if indent == 2 => {
                    if let Some(name) = trimmed.split_whitespace().next() {
                        help.commands.push(name.to_owned());
                    }
                }
                "Arguments:" if indent == 2 && !trimmed.is_empty() => help.positionals = true,
                "Options:" if indent <= 6 && trimmed.starts_with('-') => {
                    finish(&mut help, &mut current);
                    let head = trimmed.split("  ").next().unwrap_or(trimmed);
                    let mut opt = Opt {
                        long: String::new(),
                        short: None,
                        takes_value: false,
                        env: None,
                        default: None,
                    };
                    for word in head.split_whitespace() {
                        let word = word.trim_end_matches(',');
                        if let Some(long) = word.strip_prefix("--") {
                            opt.long = long.to_owned();
                        } else if let Some(short) = word.strip_prefix('-') {
                            opt.short = short.chars().next();
                        } else if word.starts_with('<') || word.starts_with('[') {
                            opt.takes_value = true;
                        }
                    }
                    current = Some((opt, trimmed.to_owned()));
                }
                "Options:" => {
                    if let Some((_, text)) = &mut current {
                        text.push(' ');
                        text.push_str(trimmed);
                    }
                }
                _ => {}
            }
        }
        finish(&mut help, &mut current);
        help
    }

    fn long(&self, name: &str) -> Option<&Opt> {
        self.options.iter().find(|o| o.long == name)
    }

    fn short(&self, name: char) -> Option<&Opt> {
        self.options.iter().find(|o| o.short == Some(name))
    }

    fn by_env(&self, name: &str) -> Option<&Opt> {
        self.options.iter().find(|o| o.env.as_deref() == Some(name))
    }

    /// Its commands, less `help`, as a list to show.
    fn subcommands(&self) -> String {
        let names: Vec<&str> = self.commands.iter().map(String::as_str).collect();
        names
            .into_iter()
            .filter(|c| *c != "help")
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn envs(&self) -> Vec<&str> {
        self.options
            .iter()
            .filter_map(|o| o.env.as_deref())
            .collect()
    }
}

/// The binary's help, asked once per command.
#[derive(Default)]
struct Cli {
    helps: RefCell<HashMap<Vec<String>, Option<Help>>>,
}

impl Cli {
    /// `astroboids <path> --help`, or `None` when there is no such command.
    fn help(&self, path: &[String]) -> Option<Help> {
        if let Some(help) = self.helps.borrow().get(path) {
            return help.clone();
        }
        let out = astroboids().args(path).arg("--help").output().unwrap();
        let help = out
            .status
            .success()
            .then(|| Help::parse(&String::from_utf8_lossy(&out.stdout)));
        self.helps.borrow_mut().insert(path.to_vec(), help.clone());
        help
    }
}

/// The binary, with none of the variables it reads from the environment.
fn astroboids() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_astroboids"));
    command.env_clear();
    command
}

// ---------------------------------------------------------------------------------------------
// What the files run.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A port a container publishes, exposes or declares (its own side).
#[derive(Debug, Clone)]
struct Port {
    number: u16,
    proto: Proto,
    name: Option<String>,
    /// How the file says it (`ports: "7777:7777/udp"`, `containerPort 9101/tcp`).
    how: String,
}

#[derive(Debug, Clone)]
enum EnvValue {
    Literal(String),
    /// Set at run time (a field of the pod, the host's environment): not known here.
    Unknown(String),
}

/// One container the files start.
#[derive(Debug, Clone)]
struct Container {
    /// `deploy/compose.yaml:97 (service shard-0)`.
    place: String,
    /// The pod (or service) it belongs to: Services select pods.
    pod: String,
    /// Whether it runs the astroboids image.
    ours: bool,
    argv: Vec<String>,
    env: BTreeMap<String, EnvValue>,
    ports: Vec<Port>,
    labels: BTreeMap<String, String>,
    /// The Dockerfile's own ENTRYPOINT + CMD: no command needed (`astroboids --help`).
    image_default: bool,
    /// A StatefulSet's pod ordinals: (first, replicas).
    ordinals: Option<(u32, u32)>,
}

/// A Kubernetes Service.
#[derive(Debug, Clone)]
struct Service {
    place: String,
    selector: BTreeMap<String, String>,
    /// (port, target: a number or a name, protocol).
    ports: Vec<(u16, String, Proto)>,
    annotations: BTreeMap<String, String>,
}

/// The containers of one deployment (the compose file, or all of k8s/) and what they reach.
#[derive(Debug, Default)]
struct Deployment {
    containers: Vec<Container>,
    /// Names its containers reach each other by: compose services, Kubernetes Services.
    hosts: BTreeSet<String>,
    services: Vec<Service>,
    /// nats-server configurations: (where, text).
    nats_configs: Vec<(String, String)>,
    errors: Vec<String>,
}

/// What the Dockerfile's last stage gives every container of the image.
#[derive(Debug, Clone, Default)]
struct Image {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: BTreeMap<String, String>,
    expose: Vec<Port>,
    /// Every stage's base image.
    from: Vec<String>,
    /// Every RUN instruction's text.
    runs: Vec<String>,
}

/// Whether an image reference names the astroboids image (`astroboids:latest`,
/// `registry.example/team/astroboids:1.2`).
fn is_our_image(image: &str) -> bool {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split(':').next() == Some("astroboids")
}

/// Words as a POSIX shell splits them (quotes and backslashes; no expansion).
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The 1-based line of the first line at or after `from` that contains `needle` (`from` when
/// none does).
fn line_of(text: &str, needle: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| line.contains(needle))
        .map_or(from, |(i, _)| i + 1)
}

fn read_dockerfile(file: &str, text: &str) -> Result<Image, String> {
    let mut image = Image::default();
    // Logical lines: continuations joined, comments dropped.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(body) = trimmed.strip_suffix('\\') {
            joined.push_str(body);
            joined.push(' ');
            pending = Some((start, joined));
        } else {
            joined.push_str(trimmed);
            logical.push((start, joined));
        }
    }
    if let Some(last) = pending {
        logical.push(last);
    }
    let mut cmd_set_here = false;
    for (line, text) in logical {
        let (instruction, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        let args = args.trim();
        let argv = |args: &str| -> Result<Vec<String>, String> {
            if args.starts_with('[') {
                serde_json::from_str(args)
                    .map_err(|e| format!("{file}:{line}: {instruction} {args}: {e}"))
            } else {
                Ok(vec!["/bin/sh".into(), "-c".into(), args.into()])
            }
        };
        match instruction.to_ascii_uppercase().as_str() {
            "FROM" => {
                image
                    .from
                    .push(args.split_whitespace().next().unwrap_or("").into());
                image.entrypoint.clear();
                image.cmd.clear();
                image.env.clear();
                image.expose.clear();
                cmd_set_here = false;
            }
            "ENTRYPOINT" => {
                image.entrypoint = argv(args)?;
                // An ENTRYPOINT resets a CMD the base image had.
                if !cmd_set_here {
                    image.cmd.clear();
                }
            }
            "CMD" => {
                image.cmd = argv(args)?;
                cmd_set_here = true;
            }
            "ENV" => {
                let words = shell_words(args);
                if words.first().is_some_and(|w| w.contains('=')) {
                    for word in words {
                        let (k, v) = word
                            .split_once('=')
                            .ok_or_else(|| format!("{file}:{line}: ENV {args}"))?;
                        image.env.insert(k.into(), v.into());
                    }
                } else if let Some((k, v)) = args.split_once(char::is_whitespace) {
                    image.env.insert(k.into(), v.trim().into());
                }
            }
            "EXPOSE" => {
                for word in args.split_whitespace() {
                    let (number, proto) = word.split_once('/').unwrap_or((word, "tcp"));
                    image.expose.push(Port {
                        number: number
                            .parse()
                            .map_err(|e| format!("{file}:{line}: EXPOSE {word}: {e}"))?,
                        proto: if proto.eq_ignore_ascii_case("udp") {
                            Proto::Udp
                        } else {
                            Proto::Tcp
                        },
                        name: None,
                        how: format!("{file}:{line}: EXPOSE {word}"),
                    });
                }
            }
            "RUN" => image.runs.push(args.into()),
            _ => {}
        }
    }
    Ok(image)
}

/// Resolves YAML merge keys (`<<: *anchor`) as Docker Compose does, also those inside an
/// anchor that is itself merged (serde_yaml's `apply_merge` leaves those for another pass).
fn merge(value: &mut Value) -> Result<(), serde_yaml::Error> {
    fn has_merge_key(value: &Value) -> bool {
        match value {
            Value::Mapping(m) => m.contains_key("<<") || m.values().any(has_merge_key),
            Value::Sequence(items) => items.iter().any(has_merge_key),
            Value::Tagged(tagged) => has_merge_key(&tagged.value),
            _ => false,
        }
    }
    for _ in 0..16 {
        value.apply_merge()?;
        if !has_merge_key(value) {
            break;
        }
    }
    Ok(())
}

/// A list of words: a YAML sequence, or a string split as a shell would.
fn words(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Sequence(items) => Some(items.iter().map(scalar).collect()),
        Value::String(text) => Some(shell_words(text)),
        Value::Null => None,
        other => Some(vec![scalar(other)]),
    }
}

/// A scalar as text (YAML numbers and booleans as written).
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
    }
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| m.iter().map(|(k, v)| (scalar(k), scalar(v))).collect())
        .unwrap_or_default()
}

/// The argv Docker and Kubernetes give a container of the image: the file's entrypoint
/// (compose `entrypoint`, Kubernetes `command`) else the image's ENTRYPOINT, then the file's
/// command (compose `command`, Kubernetes `args`) else, only when the entrypoint was not
/// replaced, the image's CMD.
fn image_argv(
    image: &Image,
    entry: Option<Vec<String>>,
    command: Option<Vec<String>>,
) -> Vec<String> {
    let replaced = entry.is_some();
    let mut argv = entry.unwrap_or_else(|| image.entrypoint.clone());
    match command {
        Some(command) => argv.extend(command),
        None if !replaced => argv.extend(image.cmd.iter().cloned()),
        None => {}
    }
    argv
}

fn read_compose(file: &str, text: &str, dir: &Path, image: &Image) -> Deployment {
    let mut d = Deployment::default();
    let mut root: Value = match serde_yaml::from_str(text) {
        Ok(root) => root,
        Err(e) => {
            d.errors.push(format!("{file}: not YAML: {e}"));
            return d;
        }
    };
    if let Err(e) = merge(&mut root) {
        d.errors.push(format!("{file}: merge keys: {e}"));
        return d;
    }
    let Some(services) = root.get("services").and_then(Value::as_mapping) else {
        d.errors.push(format!("{file}: no services"));
        return d;
    };
    d.hosts = services.keys().map(scalar).collect();
    let services_at = line_of(text, "services:", 1);
    for (name, service) in services {
        let name = scalar(name);
        let line = text
            .lines()
            .enumerate()
            .skip(services_at)
            .find(|(_, l)| l.starts_with(&format!("  {name}:")))
            .map_or(services_at, |(i, _)| i + 1);
        let place = format!("{file}:{line} (service {name})");
        let built = service.get("build").is_some_and(|b| {
            b.get("dockerfile")
                .is_some_and(|f| scalar(f).ends_with("Dockerfile"))
        });
        let image_name = service.get("image").map(scalar).unwrap_or_default();
        let ours = built || is_our_image(&image_name);
        let entry = service.get("entrypoint").and_then(words);
        let command = service.get("command").and_then(words);
        let argv = if ours {
            image_argv(image, entry, command)
        } else {
            entry
                .into_iter()
                .flatten()
                .chain(command.into_iter().flatten())
                .collect()
        };
        let mut env: BTreeMap<String, EnvValue> = BTreeMap::new();
        if ours {
            for (k, v) in &image.env {
                env.insert(k.clone(), EnvValue::Literal(v.clone()));
            }
        }
        if service.get("env_file").is_some() {
            d.errors.push(format!(
                "{place}: env_file is not read by this test: list the variables under environment"
            ));
        }
        match service.get("environment") {
            Some(Value::Mapping(m)) => {
                for (k, v) in m {
                    let value = match v {
                        Value::Null => EnvValue::Unknown("the host's environment".into()),
                        v => EnvValue::Literal(scalar(v)),
                    };
                    env.insert(scalar(k), value);
                }
            }
            Some(Value::Sequence(items)) => {
                for item in items {
                    let item = scalar(item);
                    match item.split_once('=') {
                        Some((k, v)) => env.insert(k.into(), EnvValue::Literal(v.into())),
                        None => {
                            env.insert(item, EnvValue::Unknown("the host's environment".into()))
                        }
                    };
                }
            }
            _ => {}
        }
        let mut ports = Vec::new();
        for item in items(service, "ports") {
            let (container_side, proto) = match item {
                Value::Mapping(_) => (
                    item.get("target").map(scalar).unwrap_or_default(),
                    item.get("protocol")
                        .map(scalar)
                        .unwrap_or_else(|| "tcp".into()),
                ),
                _ => {
                    let text = scalar(item);
                    let (spec, proto) = text.split_once('/').unwrap_or((&text, "tcp"));
                    (
                        spec.rsplit(':').next().unwrap_or(spec).to_owned(),
                        proto.to_owned(),
                    )
                }
            };
            push_port(
                &mut ports,
                &mut d.errors,
                &place,
                &container_side,
                &proto,
                None,
                format!("ports: {}", scalar(item)),
            );
        }
        for item in items(service, "expose") {
            let text = scalar(item);
            let (number, proto) = text.split_once('/').unwrap_or((&text, "tcp"));
            push_port(
                &mut ports,
                &mut d.errors,
                &place,
                number,
                proto,
                None,
                format!("expose: {text}"),
            );
        }
        let depends_on: Vec<String> = match service.get("depends_on") {
            Some(Value::Mapping(m)) => m.keys().map(scalar).collect(),
            Some(other) => words(other).unwrap_or_default(),
            None => Vec::new(),
        };
        for dep in depends_on.iter().filter(|dep| !d.hosts.contains(*dep)) {
            d.errors
                .push(format!("{place}: depends on {dep}, which is no service"));
        }
        // nats-server's configuration, mounted from a file next to this one.
        if image_name.starts_with("nats") {
            for volume in items(service, "volumes") {
                let volume = scalar(volume);
                let mut parts = volume.split(':');
                let (source, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if !source.starts_with('.') || !source.ends_with(".conf") {
                    continue;
                }
                match std::fs::read_to_string(dir.join(source)) {
                    Ok(conf) => d.nats_configs.push((format!("{place}: {source}"), conf)),
                    Err(e) => d.errors.push(format!("{place}: cannot read {source}: {e}")),
                }
                if !argv.iter().any(|a| a == target) {
                    d.errors.push(format!(
                        "{place}: mounts {source} at {target}, but its command {argv:?} does not name {target}"
                    ));
                }
            }
        }
        d.containers.push(Container {
            place,
            pod: name.clone(),
            ours,
            argv,
            env,
            ports,
            labels: BTreeMap::new(),
            image_default: false,
            ordinals: None,
        });
    }
    d
}

fn push_port(
    ports: &mut Vec<Port>,
    errors: &mut Vec<String>,
    place: &str,
    number: &str,
    proto: &str,
    name: Option<String>,
    how: String,
) {
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            errors.push(format!(
                "{place}: {how}: protocol {other} is neither tcp nor udp"
            ));
            return;
        }
    };
    match number.parse() {
        Ok(number) => ports.push(Port {
            number,
            proto,
            name,
            how,
        }),
        Err(_) => errors.push(format!("{place}: {how}: not one port number")),
    }
}

/// The value at a path of keys (`at(doc, &["spec", "template"])`).
fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// The items of a sequence at a key (none when absent).
fn items<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
}

type Sources = BTreeMap<String, BTreeMap<String, String>>;

/// Every Kubernetes file: `(path, text)`.
fn read_k8s(files: &[(String, String)], image: &Image) -> Deployment {
    let mut d = Deployment::default();
    // (file, line, document)
    let mut docs: Vec<(String, usize, Value)> = Vec::new();
    for (file, text) in files {
        // Where each document starts: after a `---` line, at its first line of content.
        let mut starts = Vec::new();
        let mut at_start = true;
        for (i, line) in text.lines().enumerate() {
            if line.trim_end() == "---" {
                at_start = true;
            } else if at_start && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
                starts.push(i + 1);
                at_start = false;
            }
        }
        let mut index = 0;
        for doc in serde_yaml::Deserializer::from_str(text) {
            match Value::deserialize(doc) {
                Ok(Value::Null) => {}
                Ok(mut value) => {
                    if let Err(e) = merge(&mut value) {
                        d.errors.push(format!("{file}: merge keys: {e}"));
                    }
                    docs.push((file.clone(), starts.get(index).copied().unwrap_or(1), value));
                    index += 1;
                }
                Err(e) => d.errors.push(format!("{file}: not YAML: {e}")),
            }
        }
    }
    let kind = |v: &Value| v.get("kind").map(scalar).unwrap_or_default();
    let name = |v: &Value| at(v, &["metadata", "name"]).map(scalar).unwrap_or_default();
    let mut config_maps = Sources::new();
    let mut secrets = Sources::new();
    for (file, line, doc) in &docs {
        match kind(doc).as_str() {
            "ConfigMap" => {
                let data = doc.get("data").map(string_map).unwrap_or_default();
                for (key, text) in &data {
                    if key.ends_with(".conf") && text.contains("jetstream") {
                        let place = format!("{file}:{line} (ConfigMap {}, {key})", name(doc));
                        d.nats_configs.push((place, text.clone()));
                    }
                }
                config_maps.insert(name(doc), data);
            }
            "Secret" => {
                let data = doc.get("stringData").map(string_map).unwrap_or_default();
                secrets.insert(name(doc), data);
            }
            "Service" => {
                let spec = doc.get("spec").unwrap_or(&Value::Null);
                let ports = items(spec, "ports")
                    .map(|p| {
                        let port = p.get("port").map(scalar).unwrap_or_default();
                        let port: u16 = port.parse().unwrap_or(0);
                        let target = p.get("targetPort").map_or(port.to_string(), scalar);
                        let proto = match p.get("protocol").map(scalar).as_deref() {
                            Some("UDP") => Proto::Udp,
                            _ => Proto::Tcp,
                        };
                        (port, target, proto)
                    })
                    .collect();
                d.hosts.insert(name(doc));
                d.services.push(Service {
                    place: format!("{file}:{line} (Service {})", name(doc)),
                    selector: spec.get("selector").map(string_map).unwrap_or_default(),
                    ports,
                    annotations: at(doc, &["metadata", "annotations"])
                        .map(string_map)
                        .unwrap_or_default(),
                });
            }
            _ => {}
        }
    }
    let texts: BTreeMap<&str, &str> = files
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .collect();
    for (file, line, doc) in &docs {
        let kind = kind(doc);
        let template = match kind.as_str() {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                at(doc, &["spec", "template"])
            }
            "CronJob" => at(doc, &["spec", "jobTemplate", "spec", "template"]),
            "Pod" => Some(doc),
            _ => None,
        };
        let Some(template) = template else { continue };
        let workload = format!("{kind} {}", name(doc));
        if kind == "StatefulSet"
            && let Some(service) = at(doc, &["spec", "serviceName"]).map(scalar)
            && !d.hosts.contains(&service)
        {
            d.errors.push(format!(
                "{file}:{line} ({workload}): serviceName {service} is no Service of these files"
            ));
        }
        let number = |path: &[&str], default: u32| {
            at(doc, path).map_or(Some(default), |v| scalar(v).parse().ok())
        };
        let ordinals = (kind == "StatefulSet")
            .then(|| {
                Some((
                    number(&["spec", "ordinals", "start"], 0)?,
                    number(&["spec", "replicas"], 1)?,
                ))
            })
            .flatten();
        let labels = at(template, &["metadata", "labels"])
            .map(string_map)
            .unwrap_or_default();
        let pod_spec = template.get("spec").unwrap_or(&Value::Null);
        for container in items(pod_spec, "initContainers").chain(items(pod_spec, "containers")) {
            let cname = container.get("name").map(scalar).unwrap_or_default();
            let cline = line_of(texts[file.as_str()], &format!("- name: {cname}"), *line);
            let place = format!("{file}:{cline} ({workload}, container {cname})");
            let ours = is_our_image(&container.get("image").map(scalar).unwrap_or_default());
            let env = k8s_env(
                container,
                ours,
                image,
                &config_maps,
                &secrets,
                &place,
                &mut d.errors,
            );
            // Kubernetes expands $(VAR) in command and args from the container's variables;
            // one set at run time stands for itself (its name) here.
            let expand = |words: Vec<String>| -> Vec<String> {
                words
                    .into_iter()
                    .map(|mut word| {
                        for (k, v) in &env {
                            let value = match v {
                                EnvValue::Literal(v) => v,
                                EnvValue::Unknown(_) => k,
                            };
                            word = word.replace(&format!("$({k})"), value);
                        }
                        word
                    })
                    .collect()
            };
            let entry = container.get("command").and_then(words).map(&expand);
            let command = container.get("args").and_then(words).map(&expand);
            let argv = if ours {
                image_argv(image, entry, command)
            } else {
                entry
                    .into_iter()
                    .flatten()
                    .chain(command.into_iter().flatten())
                    .collect()
            };
            let mut ports = Vec::new();
            for port in items(container, "ports") {
                let number = port.get("containerPort").map(scalar).unwrap_or_default();
                let proto = port.get("protocol").map_or("TCP".into(), scalar);
                let how = format!("containerPort {number}/{}", proto.to_ascii_lowercase());
                let port_name = port.get("name").map(scalar);
                push_port(
                    &mut ports,
                    &mut d.errors,
                    &place,
                    &number,
                    &proto,
                    port_name,
                    how,
                );
            }
            d.containers.push(Container {
                place,
                pod: format!("{file}:{line} ({workload})"),
                ours,
                argv,
                env,
                ports,
                labels: labels.clone(),
                image_default: false,
                ordinals,
            });
        }
    }
    d
}

/// A Kubernetes container's variables: the image's ENV, then `envFrom`, then `env` (later
/// ones win, as in Kubernetes).
fn k8s_env(
    container: &Value,
    ours: bool,
    image: &Image,
    config_maps: &Sources,
    secrets: &Sources,
    place: &str,
    errors: &mut Vec<String>,
) -> BTreeMap<String, EnvValue> {
    let mut env: BTreeMap<String, EnvValue> = BTreeMap::new();
    if ours {
        for (k, v) in &image.env {
            env.insert(k.clone(), EnvValue::Literal(v.clone()));
        }
    }
    for from in items(container, "envFrom") {
        let prefix = from.get("prefix").map(scalar).unwrap_or_default();
        let (what, source, set) = if let Some(r) = from.get("configMapRef") {
            ("ConfigMap", name_of(r), config_maps)
        } else if let Some(r) = from.get("secretRef") {
            ("Secret", name_of(r), secrets)
        } else {
            continue;
        };
        match set.get(&source) {
            Some(data) => {
                for (k, v) in data {
                    env.insert(format!("{prefix}{k}"), EnvValue::Literal(v.clone()));
                }
            }
            None => errors.push(format!(
                "{place}: envFrom names {what} {source}, which these files do not define"
            )),
        }
    }
    for var in items(container, "env") {
        let var_name = var.get("name").map(scalar).unwrap_or_default();
        let keyed = |r: &Value, what: &str, set: &Sources| {
            let (source, key) = (name_of(r), r.get("key").map(scalar).unwrap_or_default());
            let value = set.get(&source).and_then(|data| data.get(&key)).cloned();
            value.map(EnvValue::Literal).ok_or_else(|| {
                format!(
                    "{place}: {var_name} comes from key {key} of {what} {source}, which these \
                     files do not define"
                )
            })
        };
        let value = match (var.get("value"), var.get("valueFrom")) {
            (Some(v), _) => Ok(EnvValue::Literal(scalar(v))),
            (None, Some(from)) => {
                if let Some(r) = from.get("configMapKeyRef") {
                    keyed(r, "ConfigMap", config_maps)
                } else if let Some(r) = from.get("secretKeyRef") {
                    keyed(r, "Secret", secrets)
                } else {
                    Ok(EnvValue::Unknown(scalar(from).replace('\n', " ")))
                }
            }
            (None, None) => Ok(EnvValue::Literal(String::new())),
        };
        let value = value.unwrap_or_else(|e| {
            errors.push(e);
            EnvValue::Unknown("a missing key".into())
        });
        env.insert(var_name, value);
    }
    env
}

fn name_of(reference: &Value) -> String {
    reference.get("name").map(scalar).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// An invocation the binary understood.
#[derive(Debug, Clone)]
struct Resolved {
    /// Index in the deployment's containers.
    container: usize,
    place: String,
    /// `["cluster", "up"]`.
    path: Vec<String>,
    tokens: Vec<String>,
    help: Help,
    /// The flags given, by long name, with their values.
    flags: BTreeMap<String, Option<String>>,
    env: BTreeMap<String, EnvValue>,
    listen: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
}

impl Resolved {
    fn command(&self) -> String {
        format!("`astroboids {}`", self.tokens.join(" "))
    }

    fn name(&self) -> String {
        command_name(&self.path)
    }

    /// The value an option has: its flag, else its variable, else its default, with how it
    /// got it. `Some((None, how))`: a variable set at run time.
    fn value(&self, long: &str) -> Option<(Option<String>, String)> {
        let opt = self.help.long(long)?;
        if let Some(value) = self.flags.get(long) {
            return Some((
                value.clone(),
                format!("--{long} {}", value.clone().unwrap_or_default()),
            ));
        }
        if let Some(var) = &opt.env
            && let Some(value) = self.env.get(var)
        {
            return Some(match value {
                EnvValue::Literal(v) => (Some(v.clone()), format!("{var}={v}")),
                EnvValue::Unknown(how) => (None, format!("{var} from {how}")),
            });
        }
        opt.default
            .clone()
            .map(|d| (Some(d.clone()), format!("the --{long} default {d}")))
    }

    /// Whether a flag without a value is on: given, or its variable `true`.
    fn on(&self, long: &str) -> bool {
        self.flags.contains_key(long)
            || self
                .help
                .long(long)
                .and_then(|o| o.env.as_ref())
                .and_then(|var| self.env.get(var))
                .is_some_and(|v| matches!(v, EnvValue::Literal(v) if v == "true"))
    }

    fn address(&self, long: &str) -> Option<(SocketAddr, String)> {
        let (value, how) = self.value(long)?;
        value?.parse().ok().map(|addr| (addr, how))
    }
}

/// `astroboids cluster up` from `["cluster", "up"]`.
fn command_name(path: &[String]) -> String {
    std::iter::once("astroboids")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words after `astroboids` in an argv: directly (`astroboids shard ...`, `timeout 15
/// astroboids ...`) or in a shell's script (`sh -c "exec astroboids shard ..."`).
fn invocation(argv: &[String]) -> Option<Vec<String>> {
    let is_ours = |word: &str| word.rsplit('/').next() == Some("astroboids");
    let shell = argv
        .first()
        .is_some_and(|w| matches!(w.rsplit('/').next(), Some("sh" | "bash" | "dash")));
    if shell && let Some(at) = argv.iter().position(|w| w == "-c") {
        let script = argv.get(at + 1)?;
        return script
            .split(['\n', ';', '|', '&'])
            .map(shell_words)
            .find_map(|words| {
                let start = words.iter().position(|w| is_ours(w))?;
                Some(words[start + 1..].to_vec())
            });
    }
    let start = argv.iter().position(|w| is_ours(w))?;
    Some(argv[start + 1..].to_vec())
}

/// Checks one container's invocation against the binary; `None` when it has none to check.
fn resolve(cli: &Cli, index: usize, c: &Container, errors: &mut Vec<String>) -> Option<Resolved> {
    let Some(tokens) = invocation(&c.argv) else {
        errors.push(format!(
            "{}: runs the astroboids image but no astroboids command ({:?})",
            c.place, c.argv
        ));
        return None;
    };
    let shown = format!("`astroboids {}`", tokens.join(" "));
    let mut help = cli.help(&[]).expect("astroboids --help");
    let mut path: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(word) = tokens
        .get(i)
        .filter(|w| !w.starts_with('-') && !help.commands.is_empty())
    {
        if word == "help" || !help.commands.contains(word) {
            errors.push(format!(
                "{}: {shown}: `{}` has no command {word} (it has: {})",
                c.place,
                command_name(&path),
                help.subcommands()
            ));
            return None;
        }
        path.push(word.clone());
        help = cli.help(&path).expect("a listed command has help");
        i += 1;
    }
    if !help.commands.is_empty() && !c.image_default {
        errors.push(format!(
            "{}: {shown} names no command of `{}` (it has: {})",
            c.place,
            command_name(&path),
            help.subcommands()
        ));
        return None;
    }
    let command = command_name(&path);
    let mut flags: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut ok = true;
    while i < tokens.len() {
        let word = &tokens[i];
        i += 1;
        let (opt, inline) = if let Some(body) = word.strip_prefix("--") {
            if body.is_empty() {
                if !help.positionals {
                    errors.push(format!(
                        "{}: {shown}: `{command}` takes no arguments after --",
                        c.place
                    ));
                    ok = false;
                }
                break;
            }
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (body, None),
            };
            match help.long(name) {
                Some(opt) if !opt.takes_value && inline.is_some() => {
                    errors.push(format!("{}: {shown}: --{name} takes no value", c.place));
                    (None, None)
                }
                Some(opt) => (Some(opt.clone()), inline),
                None => {
                    errors.push(format!(
                        "{}: {shown}: `{command} --help` has no flag --{name}",
                        c.place
                    ));
                    (None, None)
                }
            }
        } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let letter = chars.next().unwrap();
            let rest: String = chars.collect();
            match help.short(letter) {
                Some(opt) => (Some(opt.clone()), (!rest.is_empty()).then_some(rest)),
                None => {
                    errors.push(format!(
                        "{}: {shown}: `{command} --help` has no flag -{letter}",
                        c.place
                    ));
                    (None, None)
                }
            }
        } else {
            if !help.positionals {
                errors.push(format!(
                    "{}: {shown}: `{command}` takes no argument {word:?} (a value without its flag?)",
                    c.place
                ));
                ok = false;
            }
            continue;
        };
        let Some(opt) = opt else {
            ok = false;
            continue;
        };
        let value = if opt.takes_value {
            match inline.or_else(|| {
                let next = tokens.get(i).cloned();
                i += 1;
                next
            }) {
                Some(value) => Some(value),
                None => {
                    errors.push(format!(
                        "{}: {shown}: --{} needs a value",
                        c.place, opt.long
                    ));
                    ok = false;
                    None
                }
            }
        } else {
            None
        };
        flags.insert(opt.long.clone(), value);
    }
    // The variables it is given must be ones it reads.
    for (var, value) in &c.env {
        if !(var.starts_with("ASTROBOIDS_") || var == "RUST_LOG") {
            continue;
        }
        match help.by_env(var) {
            None => {
                errors.push(format!(
                    "{}: {shown}: sets {var}, which `{command}` does not read (it reads: {})",
                    c.place,
                    help.envs().join(", ")
                ));
                ok = false;
            }
            Some(opt) if !opt.takes_value => {
                if let EnvValue::Literal(v) = value
                    && v != "true"
                    && v != "false"
                {
                    errors.push(format!(
                        "{}: {shown}: {var}={v}: the flag --{} takes only true or false",
                        c.place, opt.long
                    ));
                    ok = false;
                }
            }
            Some(_) => {}
        }
    }
    // The binary parses it: the words, the variables' values as their flags, then --help
    // (which stops it before it runs; required flags are not asked for).
    let shell_left = tokens.iter().any(|t| t.contains('$'));
    if ok && !shell_left {
        let mut args = tokens.clone();
        for opt in &help.options {
            let Some(EnvValue::Literal(value)) = opt.env.as_ref().and_then(|var| c.env.get(var))
            else {
                continue;
            };
            if flags.contains_key(&opt.long) {
                continue;
            }
            if opt.takes_value {
                args.extend([format!("--{}", opt.long), value.clone()]);
            } else if value == "true" {
                args.push(format!("--{}", opt.long));
            }
        }
        args.push("--help".into());
        let out = astroboids().args(&args).output().unwrap();
        if !out.status.success() {
            errors.push(format!(
                "{}: {shown}: the binary does not accept `astroboids {}`:\n{}",
                c.place,
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let mut resolved = Resolved {
        container: index,
        place: c.place.clone(),
        path,
        tokens,
        help,
        flags,
        env: c.env.clone(),
        listen: None,
        metrics: None,
    };
    resolved.listen = resolved.address("listen").map(|(a, _)| a);
    if !resolved.flags.contains_key("no-metrics") {
        resolved.metrics = ["metrics", "metrics-listen"]
            .iter()
            .find_map(|long| resolved.address(long))
            .map(|(a, _)| a);
    }
    Some(resolved)
}

/// Listeners, metrics and ports of one container.
fn check_ports(r: &Resolved, c: &Container, errors: &mut Vec<String>) {
    let command = r.command();
    let how = |long: &str| r.value(long).map(|(_, how)| how).unwrap_or_default();
    if let Some(listen) = r.listen {
        if listen.ip().is_loopback() {
            errors.push(format!(
                "{}: {command} listens on {listen} ({}): loopback, unreachable from outside its container",
                r.place,
                how("listen")
            ));
        }
        if !c
            .ports
            .iter()
            .any(|p| p.proto == Proto::Udp && p.number == listen.port())
        {
            errors.push(format!(
                "{}: {command} listens on {listen}/udp ({}), but the file neither publishes nor declares port {}/udp",
                r.place,
                how("listen"),
                listen.port()
            ));
        }
    }
    let metrics_flag = ["metrics", "metrics-listen"]
        .into_iter()
        .find(|l| r.help.long(l).is_some())
        .unwrap_or("metrics");
    if let Some(metrics) = r.metrics
        && !metrics.ip().is_loopback()
    {
        if !r.on("metrics-public") {
            errors.push(format!(
                "{}: {command}: metrics on {metrics} ({}) are not loopback: the process refuses them without --metrics-public (or ASTROBOIDS_METRICS_PUBLIC=true)",
                r.place,
                how(metrics_flag)
            ));
        }
        if !c
            .ports
            .iter()
            .any(|p| p.proto == Proto::Tcp && p.number == metrics.port())
        {
            errors.push(format!(
                "{}: {command} serves metrics on {metrics} ({}), but the file neither exposes nor declares port {}",
                r.place,
                how(metrics_flag),
                metrics.port()
            ));
        }
    }
    for port in &c.ports {
        match port.proto {
            Proto::Udp => match r.listen {
                Some(listen) if listen.port() == port.number => {}
                Some(listen) => errors.push(format!(
                    "{}: {}: {command} listens on {listen} ({}), not on port {}/udp",
                    r.place,
                    port.how,
                    how("listen"),
                    port.number
                )),
                None => errors.push(format!(
                    "{}: {}: {command} listens on no UDP port (it has no --listen)",
                    r.place, port.how
                )),
            },
            Proto::Tcp => match r.metrics {
                Some(metrics) if metrics.port() == port.number => {}
                Some(metrics) => errors.push(format!(
                    "{}: {}: {command} serves metrics on {metrics} ({}), not on port {}",
                    r.place,
                    port.how,
                    how(metrics_flag),
                    port.number
                )),
                None => errors.push(format!(
                    "{}: {}: {command} serves nothing on TCP (no --metrics)",
                    r.place, port.how
                )),
            },
        }
    }
}

/// The host of a URL (`postgres://user:pw@host:5432/db` -> `host`).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().map(str::to_owned);
    }
    host_port.split(':').next().map(str::to_owned)
}

/// Checks a deployment's containers; returns the invocations it understood.
fn check_deployment(cli: &Cli, d: &Deployment, errors: &mut Vec<String>) -> Vec<Resolved> {
    errors.extend(d.errors.iter().cloned());
    let mut resolved = Vec::new();
    for (index, c) in d.containers.iter().enumerate() {
        if !c.ours {
            continue;
        }
        if let Some(r) = resolve(cli, index, c, errors) {
            check_ports(&r, c, errors);
            resolved.push(r);
        }
    }
    // One world: every process names the same servers and world.
    for long in ["nats", "etcd", "world"] {
        let values: Vec<(String, String)> = resolved
            .iter()
            .filter_map(|r| {
                let (value, how) = r.value(long)?;
                Some((value?, format!("{} ({how})", r.place)))
            })
            .collect();
        let distinct: BTreeSet<&String> = values.iter().map(|(v, _)| v).collect();
        if distinct.len() > 1 {
            errors.push(format!(
                "the processes disagree on --{long}:\n  {}",
                values
                    .iter()
                    .map(|(v, how)| format!("{v}: {how}"))
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    // Shard processes have member ids of their own, none of those `cluster up` gives the
    // processes it runs while it makes the world (0 to --shards - 1): they stop once it is
    // made, and a plan naming members that come back as new processes is not taken over yet.
    let made_by = resolved.iter().find(|r| r.path == ["cluster", "up"]);
    let up_members = made_by
        .and_then(|r| r.value("shards")?.0?.parse::<u32>().ok())
        .map_or(0..0, |n| 0..n);
    let mut members: BTreeMap<u32, &str> = BTreeMap::new();
    for r in resolved.iter().filter(|r| r.path == ["shard"]) {
        let c = &d.containers[r.container];
        let ids = match (r.value("member"), c.ordinals) {
            (Some((Some(member), _)), _) => match member.parse::<u32>() {
                Ok(id) => id..id + 1,
                Err(_) => continue,
            },
            // The pod's ordinal (the pod-index label, a StatefulSet's).
            (Some((None, how)), Some((first, replicas))) if how.contains("pod-index") => {
                first..first + replicas
            }
            _ => continue,
        };
        for id in ids {
            if up_members.contains(&id) {
                errors.push(format!(
                    "{}: {}: member {id} is one of those `cluster up --shards {}` ({}) runs while it makes the world",
                    r.place,
                    r.command(),
                    up_members.end,
                    made_by.map_or("", |m| m.place.as_str())
                ));
            }
            if let Some(other) = members.insert(id, &r.place) {
                errors.push(format!("{}: member {id} is also {other}'s", r.place));
            }
        }
    }
    // The servers they reach are the deployment's own.
    for r in &resolved {
        for long in ["nats", "etcd", "postgres"] {
            let Some((Some(url), how)) = r.value(long) else {
                continue;
            };
            let Some(host) = url_host(&url) else {
                errors.push(format!("{}: {}: {how} is not a URL", r.place, r.command()));
                continue;
            };
            let first = host.split('.').next().unwrap_or(&host).to_owned();
            let local = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if local || !d.hosts.contains(&first) {
                errors.push(format!(
                    "{}: {}: {how} reaches {host}, which is {} (it defines: {})",
                    r.place,
                    r.command(),
                    if local {
                        "the container itself"
                    } else {
                        "not defined here"
                    },
                    d.hosts.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    // Services select pods of these files, on ports they have.
    for service in &d.services {
        if service.selector.is_empty() {
            errors.push(format!("{}: selects no pods (no selector)", service.place));
            continue;
        }
        let selected: Vec<usize> = d
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                service
                    .selector
                    .iter()
                    .all(|(k, v)| c.labels.get(k) == Some(v))
            })
            .map(|(i, _)| i)
            .collect();
        if selected.is_empty() {
            errors.push(format!(
                "{}: its selector {:?} matches no pod of these files",
                service.place, service.selector
            ));
            continue;
        }
        let pods: BTreeSet<&str> = selected
            .iter()
            .map(|&i| d.containers[i].pod.as_str())
            .collect();
        for pod in pods {
            let in_pod: Vec<&Container> = d.containers.iter().filter(|c| c.pod == pod).collect();
            for (port, target, proto) in &service.ports {
                let found = in_pod.iter().flat_map(|c| &c.ports).any(|p| {
                    p.proto == *proto
                        && (p.name.as_deref() == Some(target.as_str())
                            || p.number.to_string() == *target)
                });
                if !found {
                    errors.push(format!(
                        "{}: port {port}/{proto} targets {target}, which no container of {pod} declares ({proto})",
                        service.place
                    ));
                }
            }
        }
        if let Some(scrape) = service.annotations.get("prometheus.io/port") {
            for r in resolved.iter().filter(|r| selected.contains(&r.container)) {
                if r.metrics.map(|m| m.port().to_string()).as_deref() != Some(scrape.as_str()) {
                    errors.push(format!(
                        "{}: prometheus.io/port {scrape}, but {} {} serves metrics on {}",
                        service.place,
                        r.place,
                        r.command(),
                        r.metrics.map_or("no address".to_owned(), |m| m.to_string())
                    ));
                }
            }
        }
    }
    // NATS as the bus needs it (infra/src/nats.rs): JetStream, messages up to its limit, and
    // room to reserve a world's stream and blob bucket whatever the disk has free at start.
    for (place, conf) in &d.nats_configs {
        let setting = |key: &str| {
            conf.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim_start_matches([':', '=', ' ']).trim().to_owned())
        };
        let per_world = MAX_STREAM_BYTES + MAX_BLOB_STORE_BYTES;
        let store = setting("max_file_store");
        let holds_a_world = store
            .as_deref()
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|bytes| bytes >= per_world);
        if !holds_a_world {
            errors.push(format!(
                "{place}: max_file_store is {store:?}, not a number of bytes of at least one \
                 world's reservation, {per_world} (MAX_STREAM_BYTES + MAX_BLOB_STORE_BYTES)"
            ));
        }
        let payload = setting("max_payload");
        if payload.as_deref() != Some(NATS_MAX_PAYLOAD.to_string().as_str()) {
            errors.push(format!(
                "{place}: max_payload is {payload:?}, not the bus's {NATS_MAX_PAYLOAD} (infra::NATS_MAX_PAYLOAD)"
            ));
        }
        if !conf.contains("jetstream") {
            errors.push(format!("{place}: JetStream is not on"));
        }
    }
    resolved
}

fn report(errors: &[String]) -> String {
    errors
        .iter()
        .map(|e| format!("- {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// The files.

#[test]
fn deploy_files_use_only_what_the_binary_has() {
    let deploy = common::repo().join("deploy");
    let read = |path: &Path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let cli = Cli::default();
    let mut errors = Vec::new();

    // The Dockerfile: its builder, and the command a bare `docker run astroboids` runs.
    let dockerfile = read(&deploy.join("Dockerfile"));
    let image = read_dockerfile("deploy/Dockerfile", &dockerfile).unwrap_or_else(|e| panic!("{e}"));
    let workspace = read(&common::repo().join("Cargo.toml"));
    let rust_version = workspace
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("rust-version in Cargo.toml");
    let builder = image.from.iter().find(|f| f.starts_with("rust:"));
    if !builder.is_some_and(|f| f["rust:".len()..].starts_with(&format!("{rust_version}-"))) {
        errors.push(format!(
            "deploy/Dockerfile: the builder is {builder:?}, not the workspace's rust-version {rust_version}"
        ));
    }
    if !image.runs.iter().any(|r| {
        r.contains("cargo build") && r.contains("--bin astroboids") && r.contains("--release")
    }) {
        errors.push("deploy/Dockerfile: no RUN builds `--release --bin astroboids`".into());
    }
    if invocation(&image.entrypoint).is_none() {
        errors.push(format!(
            "deploy/Dockerfile: the ENTRYPOINT {:?} is not astroboids",
            image.entrypoint
        ));
    }
    let default = Deployment {
        containers: vec![Container {
            place: format!(
                "deploy/Dockerfile:{} (ENTRYPOINT + CMD)",
                line_of(&dockerfile, "ENTRYPOINT", 1)
            ),
            pod: "image".into(),
            ours: true,
            argv: image_argv(&image, None, None),
            env: image
                .env
                .iter()
                .map(|(k, v)| (k.clone(), EnvValue::Literal(v.clone())))
                .collect(),
            ports: Vec::new(),
            labels: BTreeMap::new(),
            image_default: true,
            ordinals: None,
        }],
        ..Deployment::default()
    };
    let from_image = check_deployment(&cli, &default, &mut errors);

    // compose.yaml.
    let compose_text = read(&deploy.join("compose.yaml"));
    let compose = read_compose("deploy/compose.yaml", &compose_text, &deploy, &image);
    let in_compose = check_deployment(&cli, &compose, &mut errors);

    // k8s/.
    let mut k8s_files = Vec::new();
    for entry in std::fs::read_dir(deploy.join("k8s")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let name = format!("deploy/k8s/{}", path.file_name().unwrap().to_string_lossy());
            k8s_files.push((name, read(&path)));
        }
    }
    k8s_files.sort();
    let k8s = read_k8s(&k8s_files, &image);
    let in_k8s = check_deployment(&cli, &k8s, &mut errors);

    // What the image exposes is what its containers listen on.
    let all: Vec<&Resolved> = in_compose.iter().chain(&in_k8s).collect();
    for port in &image.expose {
        let used = all.iter().any(|r| match port.proto {
            Proto::Udp => r.listen.is_some_and(|a| a.port() == port.number),
            Proto::Tcp => r.metrics.is_some_and(|a| a.port() == port.number),
        });
        if !used {
            errors.push(format!(
                "{}: no container of compose.yaml or k8s/ {} on it",
                port.how,
                if port.proto == Proto::Udp {
                    "listens"
                } else {
                    "serves metrics"
                }
            ));
        }
    }
    for (what, d) in [("compose.yaml", &compose), ("k8s/", &k8s)] {
        if d.nats_configs.is_empty() {
            errors.push(format!(
                "deploy/{what}: no nats-server configuration found to check"
            ));
        }
    }

    // Not vacuous: the commands each deployment must run were found and understood.
    let names = |found: &[Resolved]| found.iter().map(Resolved::name).collect::<BTreeSet<_>>();
    for (what, found) in [("compose.yaml", &in_compose), ("k8s/", &in_k8s)] {
        for needed in ["shard", "leader", "gateway", "cluster create"] {
            if !names(found).contains(&format!("astroboids {needed}")) {
                errors.push(format!(
                    "deploy/{what}: no `astroboids {needed}` understood (found: {:?})",
                    names(found)
                ));
            }
        }
    }
    let total = from_image.len() + in_compose.len() + in_k8s.len();
    assert!(
        errors.is_empty(),
        "{} problem(s) in deploy/ ({total} invocations understood):\n{}",
        errors.len(),
        report(&errors)
    );
    assert_eq!(from_image.len(), 1, "the Dockerfile's ENTRYPOINT + CMD");
    assert!(
        in_compose.len() >= 7,
        "compose.yaml: {:?}",
        names(&in_compose)
    );
    assert!(in_k8s.len() >= 4, "k8s/: {:?}", names(&in_k8s));
    assert!(total >= 12, "{total} invocations");
}

// ---------------------------------------------------------------------------------------------
// The reader and checks find what is wrong (so the test above cannot pass by finding nothing).

fn image() -> Image {
    read_dockerfile(
        "sample",
        "FROM debian\nENTRYPOINT [\"astroboids\"]\nCMD [\"--help\"]\n",
    )
    .unwrap()
}

fn compose_errors(text: &str) -> (Vec<String>, Vec<Resolved>) {
    let d = read_compose("sample.yaml", text, Path::new("."), &image());
    let mut errors = Vec::new();
    let found = check_deployment(&Cli::default(), &d, &mut errors);
    (errors, found)
}

fn assert_named(errors: &[String], needles: &[&str]) {
    for needle in needles {
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "no error names {needle:?}:\n{}",
            report(errors)
        );
    }
}

#[test]
fn a_right_sample_passes() {
    let (errors, found) = compose_errors(
        r#"
services:
  nats: {image: "nats:2.15"}
  etcd: {image: "quay.io/coreos/etcd:v3.5.21"}
  shard:
    image: astroboids:latest
    command: ["shard", "--member=3", "--metrics", "0.0.0.0:9101", "--metrics-public"]
    environment:
      ASTROBOIDS_NATS: nats://nats:4222
      ASTROBOIDS_ETCD: http://etcd:2379
      RUST_LOG: debug
    expose: ["9101"]
"#,
    );
    assert!(errors.is_empty(), "{}", report(&errors));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name(), "astroboids shard");
    assert_eq!(found[0].flags["member"].as_deref(), Some("3"));
    assert_eq!(found[0].metrics, Some("0.0.0.0:9101".parse().unwrap()));
}

#[test]
fn wrong_flags_variables_commands_and_ports_are_named() {
    let (errors, found) = compose_errors(
        r#"
services:
  shard:
    image: astroboids:latest
    command: ["shard", "--member", "0", "--no-such-flag", "--metrics", "0.0.0.0:9101"]
    environment:
      ASTROBOIDS_NOT_A_VARIABLE: "1"
      ASTROBOIDS_NATS: nats://nats-elsewhere:4222
    expose: ["9102"]
  leader:
    image: registry.example/astroboids:1
    entrypoint: ["timeout", "15", "astroboids"]
    command: ["leader", "--world", "other"]
    environment:
      ASTROBOIDS_METRICS_PUBLIC: "yes"
  launcher:
    image: astroboids:latest
    command: ["cluster", "launch"]
  server:
    image: astroboids:latest
    command: ["serve", "--metrics-listen", "0.0.0.0:9464", "--metrics-public", "--seed", "x"]
    ports: ["4434:4434/udp", "9464:9464"]
  other:
    image: "nats:2.15"
    command: ["astroboids", "--no-such-flag"]
  maker:
    image: astroboids:latest
    command: ["cluster", "up", "--shards", "2"]
  shard-again:
    image: astroboids:latest
    command: ["shard", "--member", "0"]
"#,
    );
    // All but `other` run the image (it is never checked); `launcher` names no command.
    assert_eq!(
        found.iter().map(Resolved::name).collect::<Vec<_>>(),
        [
            "astroboids shard",
            "astroboids leader",
            "astroboids serve",
            "astroboids cluster up",
            "astroboids shard"
        ],
        "{}",
        report(&errors)
    );
    assert_named(
        &errors,
        &[
            "sample.yaml:3 (service shard): `astroboids shard --member 0 --no-such-flag --metrics 0.0.0.0:9101`: `astroboids shard --help` has no flag --no-such-flag",
            "sets ASTROBOIDS_NOT_A_VARIABLE, which `astroboids shard` does not read",
            "are not loopback: the process refuses them without --metrics-public",
            "expose: 9102: `astroboids shard",
            "neither exposes nor declares port 9101",
            "reaches nats-elsewhere, which is not defined here",
            "ASTROBOIDS_METRICS_PUBLIC=yes: the flag --metrics-public takes only true or false",
            "the processes disagree on --world",
            "`astroboids cluster` has no command launch (it has: up, create, sim, status)",
            // serve listens on 127.0.0.1:4433 by default: on loopback, and not on 4434.
            "listens on 127.0.0.1:4433 (the --listen default 127.0.0.1:4433): loopback",
            "ports: 4434:4434/udp: `astroboids serve",
            // --seed takes a number: the binary itself refuses "x".
            "the binary does not accept `astroboids serve --metrics-listen 0.0.0.0:9464 --metrics-public --seed x --help`",
            // Member 0 twice, and one of cluster up's own.
            "sample.yaml:29 (service shard-again): `astroboids shard --member 0`: member 0 is one of those `cluster up --shards 2` (sample.yaml:26 (service maker)) runs",
            "sample.yaml:29 (service shard-again): member 0 is also sample.yaml:3 (service shard)'s",
        ],
    );
    assert!(
        !errors.iter().any(|e| e.contains("service other")),
        "{}",
        report(&errors)
    );
}

#[test]
fn kubernetes_services_env_sources_and_ports_are_checked() {
    let file = r#"# a sample
apiVersion: v1
kind: ConfigMap
metadata:
  name: endpoints
data:
  ASTROBOIDS_NATS: nats://nats:4222
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: server
spec:
  serviceName: server-headless
  template:
    metadata:
      labels: {app: server}
    spec:
      containers:
        - name: serve
          image: astroboids:latest
          args: ["serve", "--listen", "0.0.0.0:4433", "--metrics-listen", "0.0.0.0:9464", "--name", "$(POD_NAME)"]
          envFrom:
            - configMapRef: {name: endpoints}
            - configMapRef: {name: missing}
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports:
            - {name: quic, containerPort: 4434, protocol: UDP}
            - {name: metrics, containerPort: 9464}
---
apiVersion: v1
kind: Service
metadata:
  name: server
  annotations: {prometheus.io/port: "9100"}
spec:
  type: LoadBalancer
  selector: {app: server}
  ports:
    - {port: 4433, targetPort: players, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata:
  name: nobody
spec:
  selector: {app: nobody}
  ports:
    - {port: 1}
"#;
    let d = read_k8s(&[("sample.yaml".into(), file.into())], &image());
    let mut errors = Vec::new();
    let found = check_deployment(&Cli::default(), &d, &mut errors);
    assert_eq!(found.len(), 1, "{}", report(&errors));
    assert_eq!(found[0].listen, Some("0.0.0.0:4433".parse().unwrap()));
    assert_named(
        &errors,
        &[
            "sample.yaml:9 (StatefulSet server): serviceName server-headless is no Service",
            "envFrom names ConfigMap missing, which these files do not define",
            "sample.yaml:20 (StatefulSet server, container serve): `astroboids serve --listen 0.0.0.0:4433 --metrics-listen 0.0.0.0:9464 --name POD_NAME`: `astroboids serve --help` has no flag --name",
            "sets ASTROBOIDS_NATS, which `astroboids serve` does not read",
            "the process refuses them without --metrics-public",
            "containerPort 4434/udp: `astroboids serve",
            "listens on 0.0.0.0:4433/udp (--listen 0.0.0.0:4433), but the file neither publishes nor declares port 4433/udp",
            "(Service server): port 4433/udp targets players, which no container",
            "(Service server): prometheus.io/port 9100, but",
            "(Service nobody): its selector",
        ],
    );
}

#[test]
fn nats_configurations_too_small_for_the_bus_are_named() {
    let file = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: nats-small
data:
  nats.conf: |
    max_payload: 1048576
    jetstream {
      store_dir: /data
      max_file_store: 1073741824
    }
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: nats-unset
data:
  nats.conf: |
    max_payload: 8388608
    jetstream {
      store_dir: /data
    }
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: nats-right
data:
  nats.conf: |
    max_payload: 8388608
    jetstream {
      store_dir: /data
      max_file_store: 8589934592
    }
"#;
    let d = read_k8s(&[("sample.yaml".into(), file.into())], &image());
    assert_eq!(d.nats_configs.len(), 3);
    let mut errors = Vec::new();
    check_deployment(&Cli::default(), &d, &mut errors);
    assert_named(
        &errors,
        &[
            "sample.yaml:1 (ConfigMap nats-small, nats.conf): max_file_store is Some(\"1073741824\")",
            "sample.yaml:1 (ConfigMap nats-small, nats.conf): max_payload is Some(\"1048576\")",
            "sample.yaml:13 (ConfigMap nats-unset, nats.conf): max_file_store is None",
        ],
    );
    assert!(
        !errors.iter().any(|e| e.contains("nats-right")),
        "{}",
        report(&errors)
    );
}

#[test]
fn the_dockerfile_reader_follows_stages_continuations_and_forms() {
    let image = read_dockerfile(
        "Dockerfile",
        "FROM rust:1.95-bookworm AS build\nENTRYPOINT [\"builder\"]\nRUN cargo build \\\n    # a comment\n    --release --bin astroboids\nFROM debian:bookworm-slim\nENV ASTROBOIDS_WORLD=main RUST_LOG=\"info,x=debug\"\nEXPOSE 7777/udp 9101\nENTRYPOINT [\"astroboids\"]\nCMD shard --member 0\n",
    )
    .unwrap();
    assert_eq!(image.from, ["rust:1.95-bookworm", "debian:bookworm-slim"]);
    assert_eq!(image.runs, ["cargo build  --release --bin astroboids"]);
    assert_eq!(image.entrypoint, ["astroboids"]);
    assert_eq!(image.cmd, ["/bin/sh", "-c", "shard --member 0"]);
    assert_eq!(image.env["RUST_LOG"], "info,x=debug");
    assert_eq!(
        image
            .expose
            .iter()
            .map(|p| (p.number, p.proto))
            .collect::<Vec<_>>(),
        [(7777, Proto::Udp), (9101, Proto::Tcp)]
    );
    assert_eq!(
        invocation(&shell_words(
            "sh -c 'exec /usr/local/bin/astroboids shard --member \"${HOSTNAME##*-}\"'"
        )),
        Some(vec![
            "shard".to_owned(),
            "--member".to_owned(),
            "${HOSTNAME##*-}".to_owned()
        ])
    );
}
