use clap::Parser;

fn main() -> std::process::ExitCode {
    netnsctl::cli::run(netnsctl::cli::Cli::parse())
}
