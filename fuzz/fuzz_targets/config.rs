//! Fuzzes config parsing and validation: any input must come back as a config or as errors,
//! never as a panic. Resolving is left out because it reads the files a config names.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netnsctl::config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/netnsctl.toml");
    match config::parse(path, text) {
        Err(errors) => {
            let _ = errors.to_string();
        }
        Ok(loaded) => {
            if let Err(errors) = config::validate::validate(&loaded) {
                let _ = errors.to_string();
                return;
            }
            for namespace in loaded.config.namespaces.values() {
                let _ = netnsctl::desired::resolv_conf(namespace.dns.as_ref());
            }
        }
    }
    let _ = config::sysctld::parse(text);
});
