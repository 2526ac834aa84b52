use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = faust_rs::cli::Cli::parse();
    match faust_rs::run(cli) {
        Ok(status) => status.into(),
        Err(fatal) => {
            eprintln!("faust-rs: {fatal}");
            fatal.status.into()
        }
    }
}
