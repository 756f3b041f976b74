//! `packaging/macos/make-app-bundle` lays out the app bundle (signing is
//! macOS's and is not run here): each property list parses (with
//! Python's `plistlib`, as macOS reads them) and holds the keys the
//! system requires of a FileProvider extension and its app.
//!
//! Unix only: the script is bash's.
#![cfg(unix)]

use std::path::Path;
use std::process::Command;

/// A property list as JSON, through Python's `plistlib`.
fn plist(path: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_bundle_holds_the_extension_with_its_keys_and_entitlements() {
    let dir = tempfile::tempdir().unwrap();
    let app_binary = dir.path().join("app-bin");
    let extension_binary = dir.path().join("extension-bin");
    std::fs::write(&app_binary, b"app").unwrap();
    std::fs::write(&extension_binary, b"extension").unwrap();
    let out = dir.path().join("out dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/macos/make-app-bundle");
    let run = Command::new(&script)
        .arg("--out")
        .arg(&out)
        .args(["--team-id", "ABCDE12345", "--bundle-id", "org.example.Yonder"])
        .arg("--app-binary")
        .arg(&app_binary)
        .arg("--extension-binary")
        .arg(&extension_binary)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(
        printed.contains("codesign --force --options runtime"),
        "{printed}"
    );

    let app = out.join("Yonder.app/Contents");
    let appex = app.join("PlugIns/YonderFileProvider.appex/Contents");
    assert_eq!(
        std::fs::read(app.join("MacOS/yonder-fileprovider-app")).unwrap(),
        b"app"
    );
    assert_eq!(
        std::fs::read(appex.join("MacOS/yonder-fileprovider-extension")).unwrap(),
        b"extension"
    );

    let info = plist(&app.join("Info.plist"));
    assert_eq!(info["CFBundleIdentifier"], "org.example.Yonder");
    assert_eq!(info["CFBundleExecutable"], "yonder-fileprovider-app");
    assert_eq!(info["CFBundlePackageType"], "APPL");

    let info = plist(&appex.join("Info.plist"));
    // An extension's identifier is prefixed by its app's.
    assert_eq!(info["CFBundleIdentifier"], "org.example.Yonder.FileProvider");
    assert_eq!(info["CFBundleExecutable"], "yonder-fileprovider-extension");
    assert_eq!(info["CFBundlePackageType"], "XPC!");
    let extension = &info["NSExtension"];
    assert_eq!(
        extension["NSExtensionPointIdentifier"],
        "com.apple.fileprovider-nonui"
    );
    // The name the executable registers its class under.
    assert_eq!(
        extension["NSExtensionPrincipalClass"],
        "YonderFileProviderExtension"
    );
    assert_eq!(
        extension["NSExtensionFileProviderDocumentGroup"],
        "ABCDE12345.org.example.Yonder"
    );

    let group = serde_json::json!(["ABCDE12345.org.example.Yonder"]);
    let app_rights = plist(&out.join("Yonder.entitlements"));
    assert_eq!(app_rights["com.apple.security.application-groups"], group);
    let extension_rights = plist(&out.join("YonderFileProvider.entitlements"));
    assert_eq!(extension_rights["com.apple.security.application-groups"], group);
    assert_eq!(extension_rights["com.apple.security.app-sandbox"], true);
    assert_eq!(extension_rights["com.apple.security.network.client"], true);
}

#[test]
fn a_bundle_id_that_would_break_the_property_lists_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/macos/make-app-bundle");
    let run = Command::new(&script)
        .arg("--out")
        .arg(dir.path())
        .args(["--team-id", "ABCDE12345", "--bundle-id", "org.<x>"])
        .args(["--app-binary", "/dev/null", "--extension-binary", "/dev/null"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("bundle id org.<x>"));
    assert!(!dir.path().join("Yonder.app").exists());
}
