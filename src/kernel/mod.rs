//! Everything that talks to the kernel: namespaces, rtnetlink, sysctls, nftables, files and
//! /proc. The rest of netnsctl reaches the kernel only through this module.

pub mod exec;
pub mod files;
#[cfg(feature = "libnftables")]
pub mod libnftables;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod procs;
pub mod sysctl;
pub mod wireguard;
