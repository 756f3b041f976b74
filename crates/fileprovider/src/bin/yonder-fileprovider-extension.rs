//! The executable of yonder's FileProvider extension
//! (`Yonder.app/Contents/PlugIns/YonderFileProvider.appex`): the system
//! starts it for a domain the app added, and it serves that domain's
//! SOURCE. See docs/fileprovider.md.

#[cfg(target_os = "macos")]
fn main() {
    yonder_fileprovider::macos::extension_main()
}

#[cfg(not(target_os = "macos"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "yonder-fileprovider-extension: FileProvider extensions run on macos only, not on {}",
        std::env::consts::OS
    );
    std::process::ExitCode::FAILURE
}
