//! `taskfactory`: see `taskfactory --help`.

use clap::Parser;
use taskfactory::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    taskfactory::telemetry::init(cli.log_format);
    match taskfactory::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
