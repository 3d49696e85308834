//! WireGuard links, through one of two backends.
//!
//! The kernel module is configured over generic netlink (family "wireguard", commands
//! `WG_CMD_GET_DEVICE` and `WG_CMD_SET_DEVICE` from linux/wireguard.h). Where the module is
//! missing, `wireguard-go` runs the link as a TUN device and is configured through its UAPI
//! socket at /var/run/wireguard/NAME.sock with the text protocol of
//! <https://www.wireguard.com/xplatform/>. Both keep their UDP socket in the namespace the link
//! was created in, so a link moved elsewhere still sends its encrypted packets there.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr as NetlinkAddr};

use crate::state::{WireGuardBackend, WireGuardRecord};

/// Directory of wireguard-go's UAPI sockets, in the mount namespace it runs in.
pub const UAPI_DIR: &str = "/var/run/wireguard";

/// Environment variable that overrides the wireguard-go binary.
pub const WIREGUARD_GO_ENV: &str = "NETNSCTL_WIREGUARD_GO";

/// Configuration read back from a running link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    /// Base64 private key; `None` when none is set.
    pub private_key: Option<String>,
    pub listen_port: u16,
    pub peers: Vec<Peer>,
}

/// A peer as the link reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// Base64 public key.
    pub public_key: String,
    /// Base64 preshared key; `None` when unset (all zero).
    pub preshared_key: Option<String>,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<IpNet>,
    pub persistent_keepalive: u16,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// A peer to configure, with its endpoint already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub public_key: String,
    pub preshared_key: Option<String>,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<IpNet>,
    pub persistent_keepalive: Option<u16>,
}

/// A change to a link's configuration. Only the parts that are `Some` or listed change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceChange {
    pub private_key: Option<String>,
    pub listen_port: Option<u16>,
    /// Remove every peer not listed in `peers` first.
    pub replace_peers: bool,
    /// Peers to add or update; their allowed IPs replace the old ones.
    pub peers: Vec<PeerConfig>,
    /// Base64 public keys of peers to remove.
    pub remove_peers: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Base64 and hex, for keys.

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Decodes a 32-byte key from standard base64.
pub fn decode_key(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 44 || bytes[43] != b'=' {
        return None;
    }
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::with_capacity(33);
    for &byte in &bytes[..43] {
        let value = BASE64.iter().position(|&b| b == byte)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out.try_into().ok()
}

/// Encodes a 32-byte key in standard base64.
pub fn encode_key(key: &[u8; 32]) -> String {
    let mut text = String::with_capacity(44);
    for chunk in key.chunks(3) {
        let mut buffer = [0u8; 3];
        buffer[..chunk.len()].copy_from_slice(chunk);
        let value =
            (u32::from(buffer[0]) << 16) | (u32::from(buffer[1]) << 8) | u32::from(buffer[2]);
        for i in 0..=chunk.len() {
            text.push(BASE64[((value >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    while text.len() < 44 {
        text.push('=');
    }
    text
}

fn hex(key: &[u8; 32]) -> String {
    key.iter()
        .fold(String::with_capacity(64), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.into())
}

fn key_hex(base64: &str) -> io::Result<String> {
    decode_key(base64)
        .map(|key| hex(&key))
        .ok_or_else(|| invalid("invalid WireGuard key"))
}

// ---------------------------------------------------------------------------------------------
// Userspace backend: wireguard-go and its UAPI socket.

/// Returns the wireguard-go binary: `$NETNSCTL_WIREGUARD_GO`, else the first on PATH, /usr/bin
/// or /usr/local/bin.
pub fn wireguard_go_program() -> PathBuf {
    if let Some(path) = std::env::var_os(WIREGUARD_GO_ENV) {
        return PathBuf::from(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(["/usr/bin".into(), "/usr/local/bin".into()])
        .map(|dir| dir.join("wireguard-go"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("wireguard-go"))
}

/// Returns the UAPI socket path of a wireguard-go link.
pub fn uapi_socket(name: &str) -> PathBuf {
    Path::new(UAPI_DIR).join(format!("{name}.sock"))
}

/// Starts wireguard-go for link `name` in the calling thread's network namespace and waits for
/// its UAPI socket. Returns the process id. The process runs in the foreground of its own
/// session, so it outlives netnsctl and is stopped with [`stop_userspace`].
pub fn start_userspace(name: &str) -> io::Result<u32> {
    let program = wireguard_go_program();
    let socket = uapi_socket(name);
    if socket.exists() {
        if UnixStream::connect(&socket).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists: another wireguard-go runs a link named {name}",
                    socket.display()
                ),
            ));
        }
        // No process listens, so the socket belongs to a wireguard-go that was killed.
        tracing::warn!(socket = %socket.display(), "removing a stale UAPI socket");
        std::fs::remove_file(&socket)?;
    }
    let mut command = Command::new(&program);
    command
        .arg("-f")
        .arg(name)
        .env("WG_PROCESS_FOREGROUND", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
    }
    let mut child = command.spawn().map_err(|err| {
        let hint = if err.kind() == io::ErrorKind::NotFound {
            format!("; install wireguard-go (Debian: apt install wireguard-go) or set {WIREGUARD_GO_ENV}")
        } else {
            String::new()
        };
        io::Error::new(err.kind(), format!("cannot run {}: {err}{hint}", program.display()))
    })?;
    let pid = child.id();
    let start = Instant::now();
    loop {
        if UnixStream::connect(&socket).is_ok() {
            // The child is reaped by init once netnsctl exits; dropping the handle does not kill it.
            drop(child);
            return Ok(pid);
        }
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "{} exited with {status} before creating {}",
                program.display(),
                socket.display()
            )));
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after 10 s waiting for {}", socket.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Checks whether `pid` is a running wireguard-go process. A zombie does not count: once
/// netnsctl has exited, only the process that inherited it (init or a subreaper) reaps it.
pub fn is_wireguard_go(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Format: "PID (COMM) STATE ...", where COMM may itself contain ") ".
    let Some((head, tail)) = stat.rsplit_once(") ") else {
        return false;
    };
    let comm = head.split_once(" (").map_or("", |(_, comm)| comm);
    let state = tail.chars().next().unwrap_or('?');
    comm == "wireguard-go" && !matches!(state, 'Z' | 'X')
}

/// Stops a wireguard-go process (after checking that `pid` still is one) and removes its socket.
pub fn stop_userspace(pid: Option<u32>, socket: Option<&Path>) -> io::Result<()> {
    if let Some(pid) = pid.filter(|&pid| is_wireguard_go(pid)) {
        let target = nix::unistd::Pid::from_raw(pid as i32);
        nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM)
            .map_err(io::Error::from)?;
        let start = Instant::now();
        while is_wireguard_go(pid) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if is_wireguard_go(pid) {
            let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
        }
    }
    if let Some(socket) = socket {
        match std::fs::remove_file(socket) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    Ok(())
}

fn uapi_request(socket: &Path, request: &str) -> io::Result<Vec<(String, String)>> {
    let mut stream = UnixStream::connect(socket).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot connect to {}: {err}", socket.display()),
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut pairs = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| invalid(format!("invalid UAPI line {line:?}")))?;
        if key == "errno" {
            let errno: i32 = value.parse().unwrap_or(-1);
            if errno != 0 {
                return Err(io::Error::other(format!(
                    "wireguard-go rejected the configuration (errno {errno})"
                )));
            }
            break;
        }
        pairs.push((key.to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

/// Reads a link's configuration over its UAPI socket.
pub fn uapi_get(socket: &Path) -> io::Result<Device> {
    let mut device = Device::default();
    for (key, value) in uapi_request(socket, "get=1\n\n")? {
        match key.as_str() {
            "private_key" => device.private_key = unhex(&value).map(|key| encode_key(&key)),
            "listen_port" => device.listen_port = value.parse().unwrap_or(0),
            "public_key" => device.peers.push(Peer {
                public_key: unhex(&value)
                    .map(|key| encode_key(&key))
                    .unwrap_or_default(),
                ..Peer::default()
            }),
            _ => {
                let Some(peer) = device.peers.last_mut() else {
                    continue;
                };
                match key.as_str() {
                    "preshared_key" => {
                        peer.preshared_key = unhex(&value)
                            .filter(|key| key != &[0; 32])
                            .map(|key| encode_key(&key));
                    }
                    "endpoint" => peer.endpoint = value.parse().ok(),
                    "allowed_ip" => peer.allowed_ips.extend(value.parse::<IpNet>().ok()),
                    "persistent_keepalive_interval" => {
                        peer.persistent_keepalive = value.parse().unwrap_or(0)
                    }
                    "rx_bytes" => peer.rx_bytes = value.parse().unwrap_or(0),
                    "tx_bytes" => peer.tx_bytes = value.parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
    }
    Ok(device)
}

/// Renders a change as a UAPI `set=1` request.
pub fn uapi_set_request(change: &DeviceChange) -> io::Result<String> {
    let mut text = String::from("set=1\n");
    if let Some(key) = &change.private_key {
        let _ = writeln!(text, "private_key={}", key_hex(key)?);
    }
    if let Some(port) = change.listen_port {
        let _ = writeln!(text, "listen_port={port}");
    }
    if change.replace_peers {
        text.push_str("replace_peers=true\n");
    }
    for key in &change.remove_peers {
        let _ = writeln!(text, "public_key={}\nremove=true", key_hex(key)?);
    }
    for peer in &change.peers {
        let _ = writeln!(text, "public_key={}", key_hex(&peer.public_key)?);
        let preshared = match &peer.preshared_key {
            Some(key) => key_hex(key)?,
            None => "0".repeat(64),
        };
        let _ = writeln!(text, "preshared_key={preshared}");
        if let Some(endpoint) = peer.endpoint {
            let _ = writeln!(text, "endpoint={endpoint}");
        }
        let _ = writeln!(
            text,
            "persistent_keepalive_interval={}",
            peer.persistent_keepalive.unwrap_or(0)
        );
        text.push_str("replace_allowed_ips=true\n");
        for allowed in &peer.allowed_ips {
            let _ = writeln!(text, "allowed_ip={allowed}");
        }
    }
    text.push('\n');
    Ok(text)
}

/// Applies a change over a UAPI socket.
pub fn uapi_set(socket: &Path, change: &DeviceChange) -> io::Result<()> {
    uapi_request(socket, &uapi_set_request(change)?).map(drop)
}

// ---------------------------------------------------------------------------------------------
// Kernel backend: generic netlink.

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const WG_CMD_GET_DEVICE: u8 = 0;
const WG_CMD_SET_DEVICE: u8 = 1;
const WGDEVICE_A_IFNAME: u16 = 2;
const WGDEVICE_A_PRIVATE_KEY: u16 = 3;
const WGDEVICE_A_FLAGS: u16 = 5;
const WGDEVICE_A_LISTEN_PORT: u16 = 6;
const WGDEVICE_A_PEERS: u16 = 8;
const WGDEVICE_F_REPLACE_PEERS: u32 = 1;
const WGPEER_A_PUBLIC_KEY: u16 = 1;
const WGPEER_A_PRESHARED_KEY: u16 = 2;
const WGPEER_A_FLAGS: u16 = 3;
const WGPEER_A_ENDPOINT: u16 = 4;
const WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL: u16 = 5;
const WGPEER_A_RX_BYTES: u16 = 7;
const WGPEER_A_TX_BYTES: u16 = 8;
const WGPEER_A_ALLOWEDIPS: u16 = 9;
const WGPEER_F_REMOVE_ME: u32 = 1;
const WGPEER_F_REPLACE_ALLOWEDIPS: u32 = 2;
const WGALLOWEDIP_A_FAMILY: u16 = 1;
const WGALLOWEDIP_A_IPADDR: u16 = 2;
const WGALLOWEDIP_A_CIDR_MASK: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Netlink attributes being built, with nesting.
struct Attributes(Vec<u8>);

impl Attributes {
    fn new() -> Self {
        Attributes(Vec::new())
    }

    fn put(&mut self, kind: u16, value: &[u8]) {
        let length = 4 + value.len();
        self.0.extend_from_slice(&(length as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
    }

    fn nested(&mut self, kind: u16, inner: Attributes) {
        self.put(kind | NLA_F_NESTED, &inner.0);
    }
}

/// Iterates the attributes in `bytes` as (type, value).
fn parse_attributes(mut bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut found = Vec::new();
    while bytes.len() >= 4 {
        let length = u16::from_ne_bytes([bytes[0], bytes[1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & NLA_TYPE_MASK;
        if length < 4 || length > bytes.len() {
            break;
        }
        found.push((kind, &bytes[4..length]));
        let padded = (length + 3) & !3;
        bytes = &bytes[padded.min(bytes.len())..];
    }
    found
}

/// A generic netlink socket in the calling thread's network namespace.
struct Genl {
    socket: Socket,
    sequence: u32,
}

impl Genl {
    fn open() -> io::Result<Genl> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        socket.bind_auto()?;
        socket.connect(&NetlinkAddr::new(0, 0))?;
        Ok(Genl {
            socket,
            sequence: 0,
        })
    }

    /// Sends one request and returns the payloads (after the generic header) of the replies.
    fn request(
        &mut self,
        family: u16,
        command: u8,
        flags: u16,
        attributes: &Attributes,
    ) -> io::Result<Vec<Vec<u8>>> {
        self.sequence += 1;
        let length = 16 + 4 + attributes.0.len();
        let mut message = Vec::with_capacity(length);
        message.extend_from_slice(&(length as u32).to_ne_bytes());
        message.extend_from_slice(&family.to_ne_bytes());
        message.extend_from_slice(
            &(flags | libc::NLM_F_REQUEST as u16 | libc::NLM_F_ACK as u16).to_ne_bytes(),
        );
        message.extend_from_slice(&self.sequence.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        message.extend_from_slice(&[command, 1, 0, 0]);
        message.extend_from_slice(&attributes.0);
        self.socket.send(&message, 0)?;

        let mut replies = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let size = self.socket.recv(&mut &mut buffer[..], 0)?;
            let mut offset = 0;
            while offset + 16 <= size {
                let header = &buffer[offset..size];
                let length =
                    u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
                let kind = u16::from_ne_bytes([header[4], header[5]]);
                if length < 16 || offset + length > size {
                    return Err(invalid("malformed generic netlink reply"));
                }
                let body = &header[16..length];
                offset += (length + 3) & !3;
                match kind {
                    // NLMSG_DONE
                    3 => return Ok(replies),
                    // NLMSG_ERROR: errno 0 is the ACK.
                    2 => {
                        let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                        return if code == 0 {
                            Ok(replies)
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    _ if body.len() >= 4 => replies.push(body[4..].to_vec()),
                    _ => {}
                }
            }
        }
    }

    fn family_id(&mut self, name: &str) -> io::Result<u16> {
        let mut attributes = Attributes::new();
        let mut value = name.as_bytes().to_vec();
        value.push(0);
        attributes.put(CTRL_ATTR_FAMILY_NAME, &value);
        let replies = self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0, &attributes)?;
        replies
            .iter()
            .flat_map(|reply| parse_attributes(reply))
            .find(|(kind, value)| *kind == CTRL_ATTR_FAMILY_ID && value.len() >= 2)
            .map(|(_, value)| u16::from_ne_bytes([value[0], value[1]]))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("generic netlink family {name} not found"),
                )
            })
    }
}

fn ifname_attribute(attributes: &mut Attributes, link: &str) {
    let mut value = link.as_bytes().to_vec();
    value.push(0);
    attributes.put(WGDEVICE_A_IFNAME, &value);
}

fn sockaddr_bytes(endpoint: SocketAddr) -> Vec<u8> {
    match endpoint {
        SocketAddr::V4(v4) => {
            let mut bytes = Vec::with_capacity(16);
            bytes.extend_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            bytes.extend_from_slice(&v4.port().to_be_bytes());
            bytes.extend_from_slice(&v4.ip().octets());
            bytes.extend_from_slice(&[0; 8]);
            bytes
        }
        SocketAddr::V6(v6) => {
            let mut bytes = Vec::with_capacity(28);
            bytes.extend_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            bytes.extend_from_slice(&v6.port().to_be_bytes());
            bytes.extend_from_slice(&v6.flowinfo().to_be_bytes());
            bytes.extend_from_slice(&v6.ip().octets());
            bytes.extend_from_slice(&v6.scope_id().to_ne_bytes());
            bytes
        }
    }
}

fn parse_sockaddr(bytes: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]);
    let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
    if i32::from(family) == libc::AF_INET && bytes.len() >= 8 {
        let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
        Some(SocketAddr::new(IpAddr::V4(ip), port))
    } else if i32::from(family) == libc::AF_INET6 && bytes.len() >= 24 {
        let octets: [u8; 16] = bytes[8..24].try_into().ok()?;
        Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
    } else {
        None
    }
}

/// Applies a change to kernel link `link` in the calling thread's namespace.
// NOTE: untested: the test machines have no WireGuard module, so the tests exercise only the
// userspace backend.
pub fn kernel_set(link: &str, change: &DeviceChange) -> io::Result<()> {
    let mut genl = Genl::open()?;
    let family = genl.family_id("wireguard")?;

    let mut attributes = Attributes::new();
    ifname_attribute(&mut attributes, link);
    if let Some(key) = &change.private_key {
        attributes.put(
            WGDEVICE_A_PRIVATE_KEY,
            &decode_key(key).ok_or_else(|| invalid("invalid private key"))?,
        );
    }
    if let Some(port) = change.listen_port {
        attributes.put(WGDEVICE_A_LISTEN_PORT, &port.to_ne_bytes());
    }
    if change.replace_peers {
        attributes.put(WGDEVICE_A_FLAGS, &WGDEVICE_F_REPLACE_PEERS.to_ne_bytes());
    }

    // Peers are a nested list whose entries are numbered from 0.
    let mut peers = Attributes::new();
    let mut index = 0u16;
    for key in &change.remove_peers {
        let mut peer = Attributes::new();
        peer.put(
            WGPEER_A_PUBLIC_KEY,
            &decode_key(key).ok_or_else(|| invalid("invalid public key"))?,
        );
        peer.put(WGPEER_A_FLAGS, &WGPEER_F_REMOVE_ME.to_ne_bytes());
        peers.nested(index, peer);
        index += 1;
    }

    for config in &change.peers {
        let mut peer = Attributes::new();
        peer.put(
            WGPEER_A_PUBLIC_KEY,
            &decode_key(&config.public_key).ok_or_else(|| invalid("invalid public key"))?,
        );
        let preshared = match &config.preshared_key {
            Some(key) => decode_key(key).ok_or_else(|| invalid("invalid preshared key"))?,
            None => [0; 32],
        };
        peer.put(WGPEER_A_PRESHARED_KEY, &preshared);
        peer.put(WGPEER_A_FLAGS, &WGPEER_F_REPLACE_ALLOWEDIPS.to_ne_bytes());
        if let Some(endpoint) = config.endpoint {
            peer.put(WGPEER_A_ENDPOINT, &sockaddr_bytes(endpoint));
        }
        peer.put(
            WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
            &config.persistent_keepalive.unwrap_or(0).to_ne_bytes(),
        );

        let mut allowed = Attributes::new();
        for (i, net) in config.allowed_ips.iter().enumerate() {
            let mut entry = Attributes::new();
            let (family, address) = match net.addr() {
                IpAddr::V4(v4) => (libc::AF_INET as u16, v4.octets().to_vec()),
                IpAddr::V6(v6) => (libc::AF_INET6 as u16, v6.octets().to_vec()),
            };
            entry.put(WGALLOWEDIP_A_FAMILY, &family.to_ne_bytes());
            entry.put(WGALLOWEDIP_A_IPADDR, &address);
            entry.put(WGALLOWEDIP_A_CIDR_MASK, &[net.prefix_len()]);
            allowed.nested(i as u16, entry);
        }
        peer.nested(WGPEER_A_ALLOWEDIPS, allowed);
        peers.nested(index, peer);
        index += 1;
    }

    if index > 0 {
        attributes.nested(WGDEVICE_A_PEERS, peers);
    }
    genl.request(family, WG_CMD_SET_DEVICE, 0, &attributes)
        .map(drop)
}

/// Reads kernel link `link` in the calling thread's namespace.
pub fn kernel_get(link: &str) -> io::Result<Device> {
    let mut genl = Genl::open()?;
    let family = genl.family_id("wireguard")?;
    let mut attributes = Attributes::new();
    ifname_attribute(&mut attributes, link);
    let replies = genl.request(
        family,
        WG_CMD_GET_DEVICE,
        libc::NLM_F_DUMP as u16,
        &attributes,
    )?;
    let mut device = Device::default();
    for reply in &replies {
        for (kind, value) in parse_attributes(reply) {
            match kind {
                WGDEVICE_A_PRIVATE_KEY => {
                    device.private_key = <[u8; 32]>::try_from(value)
                        .ok()
                        .filter(|k| k != &[0; 32])
                        .map(|k| encode_key(&k));
                }
                WGDEVICE_A_LISTEN_PORT if value.len() >= 2 => {
                    device.listen_port = u16::from_ne_bytes([value[0], value[1]]);
                }
                WGDEVICE_A_PEERS => {
                    for (_, peer_bytes) in parse_attributes(value) {
                        device.peers.push(parse_kernel_peer(peer_bytes));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(device)
}

fn parse_kernel_peer(bytes: &[u8]) -> Peer {
    let mut peer = Peer::default();
    let u64_of = |value: &[u8]| value.try_into().map(u64::from_ne_bytes).unwrap_or(0);
    for (kind, value) in parse_attributes(bytes) {
        match kind {
            WGPEER_A_PUBLIC_KEY => {
                peer.public_key = <[u8; 32]>::try_from(value)
                    .map(|k| encode_key(&k))
                    .unwrap_or_default()
            }
            WGPEER_A_PRESHARED_KEY => {
                peer.preshared_key = <[u8; 32]>::try_from(value)
                    .ok()
                    .filter(|k| k != &[0; 32])
                    .map(|k| encode_key(&k));
            }
            WGPEER_A_ENDPOINT => peer.endpoint = parse_sockaddr(value),
            WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL if value.len() >= 2 => {
                peer.persistent_keepalive = u16::from_ne_bytes([value[0], value[1]]);
            }
            WGPEER_A_RX_BYTES => peer.rx_bytes = u64_of(value),
            WGPEER_A_TX_BYTES => peer.tx_bytes = u64_of(value),
            WGPEER_A_ALLOWEDIPS => {
                for (_, entry) in parse_attributes(value) {
                    let mut address = None;
                    let mut prefix = None;
                    for (kind, value) in parse_attributes(entry) {
                        match kind {
                            WGALLOWEDIP_A_IPADDR if value.len() == 4 => {
                                address = Some(IpAddr::V4(Ipv4Addr::new(
                                    value[0], value[1], value[2], value[3],
                                )));
                            }
                            WGALLOWEDIP_A_IPADDR if value.len() == 16 => {
                                let octets: [u8; 16] = value.try_into().expect("length checked");
                                address = Some(IpAddr::V6(Ipv6Addr::from(octets)));
                            }
                            WGALLOWEDIP_A_CIDR_MASK => prefix = value.first().copied(),
                            _ => {}
                        }
                    }
                    if let (Some(address), Some(prefix)) = (address, prefix) {
                        peer.allowed_ips.extend(IpNet::new(address, prefix).ok());
                    }
                }
            }
            _ => {}
        }
    }
    peer
}

/// Reads a recorded link's configuration with the backend that runs it. Kernel links are read
/// inside `namespace`, where the link lives after the move.
pub fn read_device(namespace: &str, record: &WireGuardRecord) -> io::Result<Device> {
    match record.backend {
        WireGuardBackend::Userspace => {
            let socket = record
                .socket
                .clone()
                .unwrap_or_else(|| uapi_socket(&record.underlay_name));
            uapi_get(&socket)
        }
        WireGuardBackend::Kernel => {
            let link = record.link.clone();
            super::netns::in_netns(&super::netns::netns_path(namespace), move || {
                kernel_get(&link)
            })?
        }
    }
}

/// Applies a change to a recorded link with the backend that runs it.
pub fn set_device(
    namespace: &str,
    record: &WireGuardRecord,
    change: &DeviceChange,
) -> io::Result<()> {
    match record.backend {
        WireGuardBackend::Userspace => {
            let socket = record
                .socket
                .clone()
                .unwrap_or_else(|| uapi_socket(&record.underlay_name));
            uapi_set(&socket, change)
        }
        WireGuardBackend::Kernel => {
            let link = record.link.clone();
            let change = change.clone();
            super::netns::in_netns(&super::netns::netns_path(namespace), move || {
                kernel_set(&link, &change)
            })?
        }
    }
}

/// Name a WireGuard link has in its underlay before it is moved: "nnc" and 12 hex digits of
/// SHA-256 over namespace and link name. It is unique per namespace and link, so links of the
/// same name in different namespaces never collide in the underlay or in /var/run/wireguard.
pub fn underlay_name(namespace: &str, link: &str) -> String {
    let digest = crate::desired::hex_digest(format!("{namespace}/{link}").as_bytes());
    format!("nnc{}", &digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trip() {
        let text = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
        let key = decode_key(text).expect("valid key");
        assert_eq!(encode_key(&key), text);
        assert_eq!(unhex(&hex(&key)), Some(key));
    }

    #[test]
    fn invalid_keys_rejected() {
        assert_eq!(decode_key("short="), None);
        assert_eq!(
            decode_key(&"!".repeat(43).replace('!', "A").replace("AAA", "A-A")),
            None
        );
    }

    #[test]
    fn underlay_names_fit_ifnamsiz() {
        let name = underlay_name("a-very-long-namespace-name", "wg0");
        assert_eq!(name.len(), 15);
        assert_ne!(name, underlay_name("other", "wg0"));
    }

    #[test]
    fn uapi_request_lists_peer_settings() {
        let change = DeviceChange {
            private_key: Some("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=".into()),
            listen_port: Some(51820),
            replace_peers: true,
            peers: vec![PeerConfig {
                public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=".into(),
                preshared_key: None,
                endpoint: Some("192.0.2.1:51820".parse().unwrap()),
                allowed_ips: vec!["0.0.0.0/0".parse().unwrap()],
                persistent_keepalive: Some(25),
            }],
            remove_peers: Vec::new(),
        };
        let text = uapi_set_request(&change).unwrap();
        assert!(text.starts_with("set=1\nprivate_key="), "{text}");
        assert!(
            text.contains("listen_port=51820\nreplace_peers=true\n"),
            "{text}"
        );
        assert!(text.contains("endpoint=192.0.2.1:51820\n"), "{text}");
        assert!(
            text.contains("persistent_keepalive_interval=25\n"),
            "{text}"
        );
        assert!(
            text.contains("replace_allowed_ips=true\nallowed_ip=0.0.0.0/0\n"),
            "{text}"
        );
        assert!(text.ends_with("\n\n"), "{text}");
    }
}
