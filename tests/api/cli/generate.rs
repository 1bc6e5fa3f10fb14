//! `corral gen`: no database options, unlike every other command; a fixed year unless told otherwise.

use super::{BIN, Cli};
use std::process::Command;

#[test]
fn gen_offers_no_database_options_but_every_other_command_takes_them_anywhere() {
    let cli = Cli::new();
    let help = cli.ok(&["gen", "--help"]);
    assert!(
        !help.contains("--database") && !help.contains("--config"),
        "{help}"
    );
    // Its help says the year ends on a fixed date, and how to end it now.
    assert!(help.contains("2026-11-01T00:00:00Z"), "{help}");
    assert!(help.contains("--until now"), "{help}");
    // Given anyway (as scripts that add it to every command do), it is ignored.
    let out = cli.dir.path().join("data");
    let wrote = cli.ok(&[
        "gen",
        "--subscribers",
        "3",
        "--events",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(wrote.contains("dated from 2025-11-01"), "{wrote}");
    assert!(!cli.dir.path().join("cli.db").exists());
    let now = cli.ok(&[
        "gen",
        "--subscribers",
        "3",
        "--events",
        "3",
        "--until",
        "now",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!now.contains("to 2026-11-01T00:00:00.000Z"), "{now}");

    for args in [
        &["site", "list", "--help"][..],
        &["segment", "members", "--help"][..],
        &["serve", "--help"][..],
    ] {
        let help = cli.ok(args);
        assert!(
            help.contains("--database") && help.contains("--config"),
            "{args:?}: {help}"
        );
    }
    let database = format!("sqlite://{}", cli.dir.path().join("anywhere.db").display());
    for args in [
        &["--database", &database, "site", "create", "A"][..],
        &["site", "--database", &database, "create", "B"][..],
        &["site", "create", "C", "--database", &database][..],
    ] {
        let output = Command::new(BIN)
            .args(args)
            .env_remove("CORRAL_CONFIG")
            .current_dir(cli.dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let listed = Cli::on(&database).ok(&["site", "list"]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
}
