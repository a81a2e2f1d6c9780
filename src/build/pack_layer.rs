//! Where a pack's files go in the image: the trees the stackstorm-k8s chart's init container
//! copies into its shared volumes, `/opt/stackstorm/packs/<pack>/` and
//! `/opt/stackstorm/virtualenvs/<pack>/`.
//!
//! Each pack gets two layers: its virtualenv's, then its own directory's (only the latter for a
//! pack without a virtualenv). A virtualenv changes
//! only with the pack's requirements or the build's settings, while the pack's files change with
//! every commit; kept apart, a commit that only touches the pack's code leaves its virtualenv's
//! layer as it was, so a later build takes that layer from the registry (`--cache-from`) instead
//! of building the virtualenv again. Both layers are described in the image history
//! ([`created_by`], [`virtualenv_created_by`]), which is how `st2pack merge` finds them again.

use std::path::PathBuf;

use crate::image::layer::{LayerInput, LayerSource};

/// Where st2pack puts packs in the image.
pub const PACKS_IN_IMAGE: &str = "/opt/stackstorm/packs";
/// Where st2pack puts virtualenvs in the image.
pub const VIRTUALENVS_IN_IMAGE: &str = "/opt/stackstorm/virtualenvs";

/// The layer of one pack's directory.
pub fn pack_layer(name: &str, pack_dir: impl Into<PathBuf>) -> LayerInput {
    LayerInput {
        sources: vec![LayerSource {
            source: pack_dir.into(),
            path_in_image: format!("{PACKS_IN_IMAGE}/{name}"),
        }],
    }
}

/// The layer of one pack's virtualenv.
pub fn virtualenv_layer(name: &str, virtualenv_dir: impl Into<PathBuf>) -> LayerInput {
    LayerInput {
        sources: vec![LayerSource {
            source: virtualenv_dir.into(),
            path_in_image: format!("{VIRTUALENVS_IN_IMAGE}/{name}"),
        }],
    }
}

/// The history entry (`created_by`) of a pack's layer: `st2pack: pack aws 2.0.2`. (Images made
/// before the virtualenv had a layer of its own have this one layer, holding both.)
pub fn created_by(name: &str, version: &str) -> String {
    format!("st2pack: pack {name} {version}")
}

/// The history entry (`created_by`) of a pack's virtualenv layer, right below the pack's:
/// `st2pack: virtualenv aws 2.0.2`.
pub fn virtualenv_created_by(name: &str, version: &str) -> String {
    format!("st2pack: virtualenv {name} {version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_pack_and_virtualenv_in_layers_of_their_own() {
        assert_eq!(
            pack_layer("aws", "/p/aws"),
            LayerInput::new([("/p/aws", "/opt/stackstorm/packs/aws")])
        );
        assert_eq!(
            virtualenv_layer("aws", "/v/aws"),
            LayerInput::new([("/v/aws", "/opt/stackstorm/virtualenvs/aws")])
        );
        assert_ne!(created_by("aws", "1"), virtualenv_created_by("aws", "1"));
    }
}
