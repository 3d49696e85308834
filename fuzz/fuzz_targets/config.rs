//! Fuzzes config parsing and validation: any input must come back as a config or as errors,
//! never as a panic. For a valid config it also renders what resolving derives without reading
//! files: resolv.conf, addresses, routes and the host nftables table. Resolving itself is left
//! out because it reads the files a config names. The same input is parsed as a wg-quick file
//! and as a sysctl.d file too.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netnsctl::config;
use netnsctl::desired::{self, links, wgquick};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/netnsctl.toml");
    match config::parse(path, text) {
        Err(errors) => {
            let _ = errors.to_string();
        }
        Ok(loaded) => match config::validate::validate(&loaded) {
            Err(errors) => {
                let _ = errors.to_string();
            }
            Ok(()) => {
                let mut rules = BTreeMap::new();
                for (name, namespace) in &loaded.config.namespaces {
                    let _ = desired::resolv_conf(namespace.dns.as_ref());
                    let _ = links::link_addresses(name, namespace, &[]);
                    let _ = links::routes(namespace);
                    let host_rules = links::host_rules(namespace);
                    let _ = links::localnet_links(&host_rules);
                    rules.insert(name.clone(), host_rules);
                }
                let _ = links::render_host_table(&rules);
            }
        },
    }
    let _ = wgquick::parse(text, "wg0");
    let _ = config::sysctld::parse(text);
});
