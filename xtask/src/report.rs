//! `cargo xtask report [PATHS...]`: renders the published reports — `reports/README.md` and a Markdown and
//! an HTML page per comparison — from the results folders under `reports/data/` (or the given paths) with
//! the templates in `templates/`. It runs `runner report --publish` so xtask stays free of runner's heavy
//! dependencies; the rendering code is runner's (`runner/src/report/`).

use anyhow::{Result, bail};

use crate::shell::{cargo, repo_root, run_command};

pub fn run(paths: &[&str]) -> Result<()> {
    // Every argument is a results path; a flag would otherwise be joined to the folder and "not exist".
    if let Some(flag) = paths.iter().find(|p| p.starts_with('-')) {
        bail!(
            "`cargo xtask report` takes results folders only, not `{flag}`: `cargo xtask report [PATH...]` renders \
             reports/ from reports/data/ (or the PATHs); for other formats use `runner report --help`"
        );
    }
    let root = repo_root();
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "runner", "--", "report"]);
    if paths.is_empty() {
        cmd.arg(root.join("reports/data"));
    } else {
        // Relative paths are the caller's, not the repository root's.
        let here = std::env::current_dir()?;
        cmd.args(paths.iter().map(|p| here.join(p)));
    }
    cmd.arg("--publish").arg(root.join("reports"));
    // Figures others published (the model card's), shown beside runner's on each page.
    let published = root.join("reports/published.yaml");
    if published.exists() {
        cmd.arg("--published").arg(published);
    }
    cmd.arg("--templates").arg(root.join("templates"));
    run_command(&mut cmd)
}
