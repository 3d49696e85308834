use clap::Parser;

use netnsctl::cli::generate;

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.first().is_some_and(generate::invoked_as_generator) {
        return std::process::ExitCode::from(generate::generator(&args));
    }
    netnsctl::cli::run(netnsctl::cli::Cli::parse())
}
