//! vipcheck's entry point: parse arguments, run the subcommand, print an error once,
//! map the outcome to an exit code.

use clap::{CommandFactory, Parser};
use vipcheck::cli::{Cli, Command};

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        // `vipcheck probe` (and `appcheck`, which daemons may run the same way) must never
        // exit 2..255 (keepalived's misc_dynamic reads those as "up"): their usage errors
        // exit 1 like every other "down".
        let probe = std::env::args_os()
            .nth(1)
            .is_some_and(|a| a == "probe" || a == "appcheck");
        let code = if probe && e.use_stderr() {
            1
        } else {
            e.exit_code()
        };
        let _ = e.print();
        std::process::exit(code);
    });
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
        Command::Man { dir: None } => {
            let man = clap_mangen::Man::new(Cli::command());
            match man.render(&mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("vipcheck: {e}");
                    2
                }
            }
        }
        Command::Man { dir: Some(dir) } => match std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
        {
            Ok(()) => 0,
            Err(e) => {
                eprintln!(
                    "vipcheck: cannot write the man pages to {}: {e}",
                    dir.display()
                );
                2
            }
        },
        // Each module takes its own types: the arguments convert into them (cli.rs).
        Command::Probe(args) => vipcheck::probe::run_cli(args.into()),
        Command::Appcheck(cmd) => vipcheck::probe::session::command::run_cli(cmd.into()),
        Command::Watch(args) => vipcheck::watch::run_cli(args.into()),
        Command::Status(args) => match args.agent.clone() {
            Some(addr) => vipcheck::agent::client::run_cli(args.into(), &addr),
            None => vipcheck::status::run_cli(args.into()),
        },
        Command::Agent(args) => vipcheck::agent::run_cli(args.into()),
        Command::Rewrite(args) => vipcheck::rewrite::command::run_cli(args.into()),
    };
    std::process::exit(code);
}
