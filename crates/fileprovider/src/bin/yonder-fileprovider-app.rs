//! The executable of `Yonder.app`, the app that contains yonder's
//! FileProvider extension: it adds and removes the domains the extension
//! serves (a domain per SOURCE, shown in Finder under its name).
//!
//! ```text
//! Yonder.app/Contents/MacOS/yonder-fileprovider-app add SOURCE [NAME]
//! Yonder.app/Contents/MacOS/yonder-fileprovider-app remove SOURCE
//! ```

#[cfg(target_os = "macos")]
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let done = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["add", source] => yonder_fileprovider::macos::add_domain(source, source),
        ["add", source, name] => yonder_fileprovider::macos::add_domain(source, name),
        ["remove", source] => yonder_fileprovider::macos::remove_domain(source),
        _ => Err("usage: yonder-fileprovider-app add SOURCE [NAME] | remove SOURCE".to_string()),
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yonder-fileprovider-app: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "macos"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "yonder-fileprovider-app: FileProvider domains exist on macos only, not on {}",
        std::env::consts::OS
    );
    std::process::ExitCode::FAILURE
}
