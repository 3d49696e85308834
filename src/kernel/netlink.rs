//! A synchronous rtnetlink socket with verbs named like the messages they send.
//!
//! The socket belongs to the network namespace of the thread that opened it (see
//! [`super::netns`]); after that it can be used from any thread.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

use ipnet::IpNet;
use netlink_packet_core::{
    parse_ip, parse_string, parse_u32, DecodeError, ErrorBuffer, ErrorMessage, NetlinkBuffer,
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, Parseable,
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressMessageBuffer,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    LinkMessageBuffer,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMessageBuffer, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A failed netlink request: what was asked and the kernel's reason.
#[derive(Debug)]
pub struct NetlinkError {
    /// The request, e.g. `add address 10.0.0.1/24 to eth0`.
    pub request: String,
    pub source: io::Error,
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.request, self.source)
    }
}

impl std::error::Error for NetlinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl NetlinkError {
    /// Returns the errno the kernel answered with, if any.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

pub type Result<T> = std::result::Result<T, NetlinkError>;

/// Selects a link by index or by name.
#[derive(Debug, Clone, Copy)]
pub enum LinkId<'a> {
    Index(u32),
    Name(&'a str),
}

/// The parts of a link netnsctl looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub up: bool,
    /// `IFLA_INFO_KIND`: "veth", "bridge", "wireguard", ...
    pub kind: Option<String>,
    /// Index of the bridge this link is a port of.
    pub controller: Option<u32>,
    /// Link group (`IFLA_GROUP`), 0 unless set.
    pub group: u32,
}

/// An address on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub address: IpNet,
}

/// A route in the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub protocol: u8,
    pub scope: u8,
}

/// Routes netnsctl adds carry this protocol number, so they can be told apart from kernel and
/// user routes. `RTPROT_STATIC` (4) is what `ip route add ... proto static` writes.
pub const ROUTE_PROTOCOL: RouteProtocol = RouteProtocol::Static;

/// A synchronous rtnetlink socket.
pub struct Netlink {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.set_netlink_get_strict_chk(true)?;
        socket.set_ext_ack(true)?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink {
            socket,
            sequence: 0,
            // Not zeroed: replies are received into the spare capacity, so a socket kept open
            // for a namespace uses only the pages its replies touched, not 64 KiB.
            buffer: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends one request and collects the answers until ACK or DONE.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        describe: impl FnOnce() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.request_map(message, flags, describe, Some)
    }

    /// Sends one request and collects `convert` of each reply until ACK or DONE. Replies are
    /// converted as they arrive: a dump of a thousand links keeps the parsed messages, with all
    /// their statistics and per-protocol attributes, only one at a time.
    fn request_map<T>(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        describe: impl FnOnce() -> String,
        mut convert: impl FnMut(RouteNetlinkMessage) -> Option<T>,
    ) -> Result<Vec<T>> {
        self.request_raw(message, flags, describe, |header, payload| {
            RouteNetlinkMessage::deserialize(header, payload).map(&mut convert)
        })
    }

    /// Sends one request and collects `convert` of the header and payload bytes of each reply
    /// until ACK or DONE. Dumps parse the few attributes they need from the bytes, because
    /// netlink-packet-route formats a debug string of the payload while parsing some attributes
    /// that every link and address carries (`IFLA_STATS`, `IFA_CACHEINFO`).
    fn request_raw<T>(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        describe: impl FnOnce() -> String,
        mut convert: impl FnMut(&NetlinkHeader, &[u8]) -> std::result::Result<Option<T>, DecodeError>,
    ) -> Result<Vec<T>> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        tracing::trace!(?packet, "netlink request");

        let fail = |describe: &dyn Fn() -> String, source: io::Error| NetlinkError {
            request: describe(),
            source,
        };
        let invalid = |describe: &dyn Fn() -> String, err: DecodeError| {
            fail(
                describe,
                io::Error::new(io::ErrorKind::InvalidData, err.to_string()),
            )
        };
        let describe: &dyn Fn() -> String = &describe_once(describe);
        self.socket
            .send(&out, 0)
            .map_err(|err| fail(describe, err))?;

        let mut replies = Vec::new();
        loop {
            self.buffer.clear();
            self.socket
                .recv(&mut self.buffer, 0)
                .map_err(|err| fail(describe, err))?;
            let size = self.buffer.len();
            let mut offset = 0;
            while offset < size {
                let bytes = &self.buffer[offset..size];
                let buffer =
                    NetlinkBuffer::new_checked(&bytes).map_err(|err| invalid(describe, err))?;
                let length = buffer.length() as usize;
                if length == 0 {
                    break;
                }
                offset += length;
                let header = NetlinkHeader::parse(&buffer).map_err(|err| invalid(describe, err))?;
                if header.sequence_number != self.sequence {
                    continue;
                }
                match header.message_type {
                    NLMSG_DONE => return Ok(replies),
                    NLMSG_ERROR => {
                        let error = ErrorBuffer::new_checked(&buffer.payload())
                            .and_then(|error| ErrorMessage::parse(&error))
                            .map_err(|err| invalid(describe, err))?;
                        return match error.code {
                            None => Ok(replies),
                            Some(_) => Err(fail(describe, error.to_io())),
                        };
                    }
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    _ => {
                        let reply = convert(&header, buffer.payload())
                            .map_err(|err| invalid(describe, err))?;
                        replies.extend(reply);
                        if flags & NLM_F_DUMP != NLM_F_DUMP && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                }
            }
        }
    }

    /// Lists all links.
    pub fn dump_links(&mut self) -> Result<Vec<Link>> {
        self.request_raw(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            || "list links".into(),
            |header, payload| match header.message_type {
                libc::RTM_NEWLINK => parse_link_bytes(payload).map(Some),
                _ => Ok(None),
            },
        )
    }

    /// Looks up one link. Returns `None` when it does not exist.
    pub fn get_link(&mut self, id: LinkId) -> Result<Option<Link>> {
        let mut message = LinkMessage::default();
        match id {
            LinkId::Index(index) => message.header.index = index,
            LinkId::Name(name) => message
                .attributes
                .push(LinkAttribute::IfName(name.to_owned())),
        }
        let replies = self.request_raw(
            RouteNetlinkMessage::GetLink(message),
            0,
            || format!("get link {id}"),
            |header, payload| match header.message_type {
                libc::RTM_NEWLINK => parse_link_bytes(payload).map(Some),
                _ => Ok(None),
            },
        );
        match replies {
            Ok(replies) => Ok(replies.into_iter().next()),
            Err(err) if err.errno() == Some(libc::ENODEV) => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn set_link(&mut self, message: LinkMessage, describe: impl FnOnce() -> String) -> Result<()> {
        self.request(RouteNetlinkMessage::SetLink(message), NLM_F_ACK, describe)
            .map(drop)
    }

    /// Sets a link administratively up or down.
    pub fn set_link_up(&mut self, index: u32, up: bool) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.change_mask = LinkFlags::Up;
        if up {
            message.header.flags = LinkFlags::Up;
        }
        self.set_link(message, || {
            format!("set link {index} {}", if up { "up" } else { "down" })
        })
    }

    /// Makes a link a port of bridge `controller`, or of none with 0.
    pub fn set_link_controller(&mut self, index: u32, controller: u32) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message
            .attributes
            .push(LinkAttribute::Controller(controller));
        self.set_link(message, || {
            format!("set master of link {index} to {controller}")
        })
    }

    /// Moves a link into the network namespace open at `netns_fd`, optionally renaming it.
    pub fn set_link_netns(
        &mut self,
        index: u32,
        netns_fd: RawFd,
        rename: Option<&str>,
    ) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.attributes.push(LinkAttribute::NetNsFd(netns_fd));
        if let Some(name) = rename {
            message
                .attributes
                .push(LinkAttribute::IfName(name.to_owned()));
        }
        self.set_link(message, || {
            format!("move link {index} to another namespace")
        })
    }

    /// Creates a veth pair. Each end is created directly in the namespace open at its fd, or in
    /// this socket's namespace when the fd is `None`.
    pub fn add_veth(
        &mut self,
        name: &str,
        netns_fd: Option<RawFd>,
        peer: &str,
        peer_netns_fd: Option<RawFd>,
    ) -> Result<()> {
        let mut peer_message = LinkMessage::default();
        peer_message
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        if let Some(fd) = peer_netns_fd {
            peer_message.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        if let Some(fd) = netns_fd {
            message.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            || format!("create veth pair {name} / {peer}"),
        )
        .map(drop)
    }

    /// Creates a link of a kind that needs no parameters (`bridge`, ...).
    pub fn add_link(&mut self, name: &str, kind: InfoKind) -> Result<()> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        let kind_name = kind.to_string();
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            || format!("create {kind_name} link {name}"),
        )
        .map(drop)
    }

    /// Deletes a link. A link that is already gone is not an error.
    pub fn del_link(&mut self, index: u32) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(message), NLM_F_ACK, || {
            format!("delete link {index}")
        }) {
            Err(err) if err.errno() == Some(libc::ENODEV) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Puts a link into a link group, like `ip link set dev NAME group GROUP`.
    pub fn set_link_group(&mut self, index: u32, group: u32) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.attributes.push(LinkAttribute::Group(group));
        self.set_link(message, || format!("set group of link {index} to {group}"))
    }

    /// Deletes every link of a link group in this socket's namespace with one request, like `ip
    /// link delete group GROUP`. The kernel unregisters them in one batch, so the RCU grace
    /// periods of link removal are waited for once per batch, not once per link. Deleting a veth
    /// end deletes its peer in the same batch. An empty group is not an error.
    pub fn del_link_group(&mut self, group: u32) -> Result<()> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::Group(group));
        match self.request(RouteNetlinkMessage::DelLink(message), NLM_F_ACK, || {
            format!("delete the links of group {group}")
        }) {
            Err(err) if err.errno() == Some(libc::ENODEV) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Lists all addresses.
    pub fn dump_addresses(&mut self) -> Result<Vec<Address>> {
        self.dump_per_family(
            |family| {
                let mut message = AddressMessage::default();
                message.header.family = family;
                RouteNetlinkMessage::GetAddress(message)
            },
            "list addresses",
            libc::RTM_NEWADDR,
            parse_address_bytes,
        )
    }

    /// Dumps the IPv4 and then the IPv6 objects of one kind, parsing each reply of type `reply`.
    /// An AF_UNSPEC dump would take the RTNL mutex around the dumps of all families, while the
    /// IPv4 and IPv6 address and route dumps on their own run without it (Linux 6.18).
    fn dump_per_family<T>(
        &mut self,
        request: impl Fn(AddressFamily) -> RouteNetlinkMessage,
        describe: &str,
        reply: u16,
        parse: impl Fn(&[u8]) -> std::result::Result<Option<T>, DecodeError>,
    ) -> Result<Vec<T>> {
        let mut found = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            found.extend(self.request_raw(
                request(family),
                NLM_F_DUMP,
                || describe.to_owned(),
                |header, payload| {
                    if header.message_type == reply {
                        parse(payload)
                    } else {
                        Ok(None)
                    }
                },
            )?);
        }
        Ok(found)
    }

    fn address_message(index: u32, address: &IpNet) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.index = index;
        message.header.prefix_len = address.prefix_len();
        message.header.family = family_of(&address.addr());
        message
            .attributes
            .push(AddressAttribute::Local(address.addr()));
        if address.addr().is_ipv4() {
            message
                .attributes
                .push(AddressAttribute::Address(address.addr()));
        }
        message
    }

    /// Adds an address to a link. IPv6 addresses skip duplicate address detection so they are
    /// usable at once.
    pub fn add_address(&mut self, index: u32, address: &IpNet) -> Result<()> {
        let mut message = Self::address_message(index, address);
        if address.addr().is_ipv6() {
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            || format!("add address {address} to link {index}"),
        )
        .map(drop)
        .map_err(|mut err| {
            // The kernel returns EACCES for an IPv6 address on a link with IPv6 disabled.
            if address.addr().is_ipv6() && err.errno() == Some(libc::EACCES) {
                err.source = io::Error::new(
                    err.source.kind(),
                    format!(
                        "{}; IPv6 is disabled on the link (disable_ipv6 = 1)",
                        err.source
                    ),
                );
            }
            err
        })
    }

    /// Removes an address from a link.
    pub fn del_address(&mut self, index: u32, address: &IpNet) -> Result<()> {
        let message = Self::address_message(index, address);
        self.request(RouteNetlinkMessage::DelAddress(message), NLM_F_ACK, || {
            format!("remove address {address} from link {index}")
        })
        .map(drop)
    }

    /// Lists the routes of the main table, both families.
    pub fn dump_routes(&mut self) -> Result<Vec<Route>> {
        self.dump_per_family(
            |family| {
                let mut message = RouteMessage::default();
                message.header.address_family = family;
                RouteNetlinkMessage::GetRoute(message)
            },
            "list routes",
            libc::RTM_NEWROUTE,
            parse_route_bytes,
        )
    }

    fn route_message(
        destination: &IpNet,
        gateway: Option<IpAddr>,
        oif: Option<u32>,
    ) -> RouteMessage {
        let mut message = RouteMessage::default();
        message.header.address_family = family_of(&destination.addr());
        message.header.destination_prefix_length = destination.prefix_len();
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = ROUTE_PROTOCOL;
        message.header.kind = RouteType::Unicast;
        message.header.scope = if gateway.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        if destination.prefix_len() > 0 {
            message
                .attributes
                .push(RouteAttribute::Destination(route_address(
                    destination.addr(),
                )));
        }
        if let Some(gateway) = gateway {
            message
                .attributes
                .push(RouteAttribute::Gateway(route_address(gateway)));
        }
        if let Some(oif) = oif {
            message.attributes.push(RouteAttribute::Oif(oif));
        }
        message
    }

    /// Adds a route to the main table.
    pub fn add_route(
        &mut self,
        destination: &IpNet,
        gateway: Option<IpAddr>,
        oif: Option<u32>,
    ) -> Result<()> {
        let message = Self::route_message(destination, gateway, oif);
        self.request(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            || describe_route("add", destination, gateway),
        )
        .map(drop)
    }

    /// Removes a route from the main table.
    pub fn del_route(
        &mut self,
        destination: &IpNet,
        gateway: Option<IpAddr>,
        oif: Option<u32>,
    ) -> Result<()> {
        let mut message = Self::route_message(destination, gateway, oif);
        message.header.scope = RouteScope::NoWhere;
        self.request(RouteNetlinkMessage::DelRoute(message), NLM_F_ACK, || {
            describe_route("delete", destination, gateway)
        })
        .map(drop)
    }
}

impl fmt::Display for LinkId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkId::Index(index) => write!(f, "index {index}"),
            LinkId::Name(name) => f.write_str(name),
        }
    }
}

fn describe_once(describe: impl FnOnce() -> String) -> impl Fn() -> String {
    let text = std::cell::OnceCell::new();
    let describe = std::cell::Cell::new(Some(describe));
    move || {
        text.get_or_init(|| describe.take().map(|f| f()).unwrap_or_default())
            .clone()
    }
}

fn describe_route(verb: &str, destination: &IpNet, gateway: Option<IpAddr>) -> String {
    match gateway {
        Some(gateway) => format!("{verb} route {destination} via {gateway}"),
        None => format!("{verb} route {destination}"),
    }
}

fn family_of(address: &IpAddr) -> AddressFamily {
    if address.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn route_address(address: IpAddr) -> RouteAddress {
    match address {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

/// Parses an `RTM_NEWLINK` payload, reading only the attributes a [`Link`] has.
fn parse_link_bytes(payload: &[u8]) -> std::result::Result<Link, DecodeError> {
    let buffer = LinkMessageBuffer::new_checked(&payload)?;
    let mut link = Link {
        index: buffer.link_index(),
        name: String::new(),
        up: buffer.flags() & libc::IFF_UP as u32 != 0,
        kind: None,
        controller: None,
        group: 0,
    };
    for attribute in buffer.attributes() {
        let attribute = attribute?;
        let value = attribute.value();
        match attribute.kind() {
            libc::IFLA_IFNAME => link.name = parse_string(value)?,
            libc::IFLA_MASTER => link.controller = Some(parse_u32(value)?),
            libc::IFLA_GROUP => link.group = parse_u32(value)?,
            libc::IFLA_LINKINFO => {
                for info in NlasIterator::new(value) {
                    let info = info?;
                    if info.kind() == libc::IFLA_INFO_KIND {
                        link.kind = Some(parse_string(info.value())?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(link)
}

/// Parses an `RTM_NEWADDR` payload. The address is `IFA_LOCAL`, or `IFA_ADDRESS` when there is
/// no local one (IPv6).
fn parse_address_bytes(payload: &[u8]) -> std::result::Result<Option<Address>, DecodeError> {
    let buffer = AddressMessageBuffer::new_checked(&payload)?;
    let mut local = None;
    let mut address = None;
    for attribute in buffer.attributes() {
        let attribute = attribute?;
        match attribute.kind() {
            libc::IFA_LOCAL => local = Some(parse_ip(attribute.value())?),
            libc::IFA_ADDRESS => address = Some(parse_ip(attribute.value())?),
            _ => {}
        }
    }
    let Some(ip) = local.or(address) else {
        return Ok(None);
    };
    Ok(IpNet::new(ip, buffer.prefix_len())
        .ok()
        .map(|address| Address {
            index: buffer.index(),
            address,
        }))
}

/// Parses an `RTM_NEWROUTE` payload of the main table. Returns `None` for other tables and for
/// families other than IPv4 and IPv6.
fn parse_route_bytes(payload: &[u8]) -> std::result::Result<Option<Route>, DecodeError> {
    let buffer = RouteMessageBuffer::new_checked(&payload)?;
    let family = buffer.address_family();
    if buffer.table() != libc::RT_TABLE_MAIN
        || (family != libc::AF_INET as u8 && family != libc::AF_INET6 as u8)
    {
        return Ok(None);
    }
    let mut destination = None;
    let mut gateway = None;
    let mut oif = None;
    for attribute in buffer.attributes() {
        let attribute = attribute?;
        match attribute.kind() {
            libc::RTA_DST => destination = Some(parse_ip(attribute.value())?),
            libc::RTA_GATEWAY => gateway = Some(parse_ip(attribute.value())?),
            libc::RTA_OIF => oif = Some(parse_u32(attribute.value())?),
            _ => {}
        }
    }
    let unspecified = if family == libc::AF_INET6 as u8 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    };
    let prefix_len = if destination.is_some() {
        buffer.destination_prefix_length()
    } else {
        0
    };
    let Ok(destination) = IpNet::new(destination.unwrap_or(unspecified), prefix_len) else {
        return Ok(None);
    };
    Ok(Some(Route {
        destination,
        gateway,
        oif,
        protocol: buffer.protocol(),
        scope: buffer.scope(),
    }))
}
