//! Which local image each container of a docker pod runs: the manifest's images renamed by
//! `--image-map`, and the executor's own image built on this machine when the map leaves it out.

use std::collections::BTreeMap;

use crate::shim::EXE_IN_CONTAINER;

/// The executor's image in the engine for init, wait and the sandbox when `--image-map` does not
/// map the pod's executor image: built on this machine by `tests/image` (`FROM scratch`, a static
/// `argoexec` on `PATH`, built without the local runner).
pub const EXECUTOR_IMAGE: &str = "argoexec:local";
/// How a container of [`EXECUTOR_IMAGE`] runs the executor: by name, through its `PATH`.
const EXECUTOR_PROGRAM: &str = "argoexec";

/// Manifest images to local images: `FROM=TO` pairs; `*` maps every image not named.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    map: BTreeMap<String, String>,
}

impl ImageMap {
    /// Parses `FROM=TO` pairs.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for pair in pairs {
            let (from, to) = pair
                .split_once('=')
                .filter(|(from, to)| !from.is_empty() && !to.is_empty())
                .ok_or_else(|| format!("invalid image mapping {pair:?}: expected FROM=TO"))?;
            map.insert(from.to_owned(), to.to_owned());
        }
        Ok(Self { map })
    }

    /// The local image for `image`.
    pub fn local(&self, image: &str) -> String {
        self.map
            .get(image)
            .or_else(|| self.map.get("*"))
            .cloned()
            .unwrap_or_else(|| image.to_owned())
    }

    /// Whether the map names `image`, by name or through `*`.
    fn maps(&self, image: &str) -> bool {
        self.map.contains_key(image) || self.map.contains_key("*")
    }

    /// What a container whose manifest names `image` runs from. Argo's executor (`executor`:
    /// init, wait, and the sandbox's image) runs this binary, bound into the local image the map
    /// gives, when the map names its image; otherwise the executor's own image,
    /// [`EXECUTOR_IMAGE`], and the `argoexec` on its `PATH` (the sandbox binds this binary in
    /// either way: its `__pause` is not in that image).
    pub(crate) fn choose(&self, image: &str, executor: bool) -> Choice {
        if executor && !self.maps(image) {
            return Choice {
                manifest: image.to_owned(),
                image: EXECUTOR_IMAGE.to_owned(),
                bind_exe: false,
                mapped: false,
            };
        }
        Choice {
            manifest: image.to_owned(),
            image: self.local(image),
            bind_exe: executor,
            mapped: self.maps(image),
        }
    }
}

/// The image a container runs from, and how it runs the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    /// The image the manifest names.
    pub(crate) manifest: String,
    /// The local image.
    pub(crate) image: String,
    /// This binary is bound at [`EXE_IN_CONTAINER`] and run from there.
    pub(crate) bind_exe: bool,
    /// `--image-map` gave the image.
    mapped: bool,
}

impl Choice {
    /// The program that runs the executor in this container.
    pub(crate) fn executor_program(&self) -> &'static str {
        if self.bind_exe {
            EXE_IN_CONTAINER
        } else {
            EXECUTOR_PROGRAM
        }
    }

    /// Why a container of this image cannot be made: the engine does not have it.
    pub(crate) fn missing(&self) -> String {
        let Self {
            manifest, image, ..
        } = self;
        if image == EXECUTOR_IMAGE && !self.mapped {
            format!(
                "image {image} (the executor's own image, for {manifest}) is not in the engine: \
                 build it with tests/image, or map {manifest} to a local image with \
                 --image-map {manifest}=IMAGE"
            )
        } else if self.mapped {
            format!(
                "image {image} (mapped from {manifest} by --image-map) is not in the engine: \
                 images are not pulled; map {manifest} to a local image with \
                 --image-map {manifest}=IMAGE (FROM=TO)"
            )
        } else {
            format!(
                "image {image} is not in the engine: images are not pulled; map it to a local \
                 image with --image-map {image}=IMAGE (FROM=TO)"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const ARGO: &str = "quay.io/argoproj/argoexec:v3.3.8";

    #[test]
    fn images_map_by_name_then_star() {
        let map = ImageMap::parse(["alpine:3.16=local/busybox:1", "*=local/base:1"]).unwrap();
        assert_eq!(map.local("alpine:3.16"), "local/busybox:1");
        assert_eq!(map.local(ARGO), "local/base:1");
        assert_eq!(ImageMap::default().local("x:1"), "x:1");
        assert!(ImageMap::parse(["nope"]).is_err());
        assert!(ImageMap::parse(["=x"]).is_err());
    }

    #[test]
    fn the_executor_runs_its_own_image_by_name_unless_the_map_names_its_image() {
        let none = ImageMap::default();
        let own = none.choose(ARGO, true);
        assert_eq!(own.image, EXECUTOR_IMAGE);
        assert!(!own.bind_exe);
        assert_eq!(own.executor_program(), "argoexec");
        // Mapped by name or by `*`: this binary, bound into the mapped image, as before.
        for map in [format!("{ARGO}=local/base:1"), "*=local/base:1".to_owned()] {
            let map = ImageMap::parse([map.as_str()]).unwrap();
            let bound = map.choose(ARGO, true);
            assert_eq!(bound.image, "local/base:1");
            assert!(bound.bind_exe);
            assert_eq!(bound.executor_program(), EXE_IN_CONTAINER);
        }
        // Another image's mapping leaves the executor's own image in place.
        let other = ImageMap::parse(["alpine:3.16=local/busybox:1"]).unwrap();
        assert_eq!(other.choose(ARGO, true).image, EXECUTOR_IMAGE);
    }

    #[test]
    fn user_images_are_the_manifests_or_the_maps_never_bound() {
        let none = ImageMap::default();
        let user = none.choose("alpine:3.16", false);
        assert_eq!(user.image, "alpine:3.16");
        assert!(!user.bind_exe);
        let map = ImageMap::parse(["alpine:3.16=local/busybox:1"]).unwrap();
        assert_eq!(map.choose("alpine:3.16", false).image, "local/busybox:1");
    }

    #[test]
    fn a_missing_image_names_itself_and_the_way_to_get_it() {
        let own = ImageMap::default().choose(ARGO, true).missing();
        assert!(own.contains("image argoexec:local"), "{own}");
        assert!(own.contains("tests/image"), "{own}");
        assert!(own.contains(&format!("--image-map {ARGO}=IMAGE")), "{own}");
        let user = ImageMap::default().choose("alpine:3.16", false).missing();
        assert!(
            user.contains("image alpine:3.16 is not in the engine"),
            "{user}"
        );
        assert!(
            user.contains("--image-map alpine:3.16=IMAGE (FROM=TO)"),
            "{user}"
        );
        let map = ImageMap::parse(["alpine:3.16=local/busybox:1"]).unwrap();
        let mapped = map.choose("alpine:3.16", false).missing();
        assert!(
            mapped.contains("image local/busybox:1 (mapped from alpine:3.16"),
            "{mapped}"
        );
    }
}
