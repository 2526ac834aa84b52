use std::process::ExitCode;

use clap::FromArgMatches;

fn main() -> ExitCode {
    faust_rs::relocation_table::release();
    let matches = faust_rs::cli::command()
        .long_version(faust_rs::cli::long_version())
        .get_matches();
    let cli = faust_rs::cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match faust_rs::run(cli) {
        Ok(status) => status.into(),
        Err(fatal) => {
            eprintln!("faust-rs: {fatal}");
            fatal.status.into()
        }
    }
}
