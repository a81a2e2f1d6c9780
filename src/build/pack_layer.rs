//! Where a pack's files go in the image: the trees the stackstorm-k8s chart's init container
//! copies into its shared volumes, `/opt/stackstorm/packs/<pack>/` and
//! `/opt/stackstorm/virtualenvs/<pack>/`, one layer per pack holding both, described in the
//! image history by [`created_by`] (which is how `st2pack merge` finds each pack's layer again).

use std::path::PathBuf;

use crate::image::layer::{LayerInput, LayerSource};

/// Where st2pack puts packs in the image.
pub const PACKS_IN_IMAGE: &str = "/opt/stackstorm/packs";
/// Where st2pack puts virtualenvs in the image.
pub const VIRTUALENVS_IN_IMAGE: &str = "/opt/stackstorm/virtualenvs";

/// The layer of one pack: the pack directory, and its virtualenv if it has one.
pub fn pack_layer(
    name: &str,
    pack_dir: impl Into<PathBuf>,
    virtualenv_dir: Option<PathBuf>,
) -> LayerInput {
    let mut sources = vec![LayerSource {
        source: pack_dir.into(),
        path_in_image: format!("{PACKS_IN_IMAGE}/{name}"),
    }];
    if let Some(venv) = virtualenv_dir {
        sources.push(LayerSource {
            source: venv,
            path_in_image: format!("{VIRTUALENVS_IN_IMAGE}/{name}"),
        });
    }
    LayerInput { sources }
}

/// The history entry (`created_by`) of a pack's layer: `st2pack: pack aws 2.0.2`.
pub fn created_by(name: &str, version: &str) -> String {
    format!("st2pack: pack {name} {version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_pack_and_virtualenv() {
        let input = pack_layer("aws", "/p/aws", Some("/v/aws".into()));
        assert_eq!(
            input,
            LayerInput::new([
                ("/p/aws", "/opt/stackstorm/packs/aws"),
                ("/v/aws", "/opt/stackstorm/virtualenvs/aws"),
            ])
        );
        assert_eq!(pack_layer("x", "/p/x", None).sources.len(), 1);
    }
}
