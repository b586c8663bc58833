//! What the binary's end-to-end tests share.

use std::process::Command;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// `vigil` with the store key every store of this test process is encrypted with
/// (`VIGIL_KEY_FILE`), kept outside their data directories as the server requires.
pub fn vigil_cmd() -> Command {
    static KEY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        let path = std::env::temp_dir().join(format!(
            "vigil-test-{}-{}.key",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let text = format!(
            "{:032x}{:032x}\n",
            seed,
            u128::from(std::process::id()) << 64 | 0x5eed
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).expect("create the test store key");
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("write the test store key");
        path
    });
    let mut command = Command::new(VIGIL);
    command.env("VIGIL_KEY_FILE", key);
    command
}
