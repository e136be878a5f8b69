//! vipcheck's entry point: parse arguments, run the subcommand, print an error once,
//! map the outcome to an exit code.

use clap::{CommandFactory, Parser};
use vipcheck::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "vipcheck",
                &mut std::io::stdout(),
            );
            0
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            match man.render(&mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("vipcheck: {e}");
                    2
                }
            }
        }
        Command::Probe(args) => vipcheck::probe::run_cli(args),
        Command::Appcheck(cmd) => vipcheck::probe::session::command::run_cli(cmd),
        Command::Watch(args) => vipcheck::watch::run_cli(args),
        Command::Rewrite(args) => vipcheck::rewrite::command::run_cli(args),
    };
    std::process::exit(code);
}
