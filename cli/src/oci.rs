//! `--emit oci`: an OCI image archive (the `oci-archive:` format of skopeo and
//! podman: a tar of an OCI image layout) holding one static executable, for
//! schedulers that run container images (Kubernetes, Nomad, Bacalhau's docker
//! executor).
//!
//! The image has one gzip layer with the executable at `/<name>` and an empty
//! directory for every baked `--dir` host path (the mount points), a config with
//! `Entrypoint ["/<name>"]` and those paths as `Volumes`, and an index naming the
//! image `<name>:latest`. Everything is deterministic (fixed timestamps and owners),
//! so the same input gives the same digests.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

/// What goes into the image.
pub struct ImageSpec<'a> {
    /// The executable's bytes (statically linked).
    pub executable: &'a [u8],
    /// Its file name in the image's root, also the image name.
    pub name: &'a str,
    /// OCI architecture: `amd64` or `arm64`.
    pub architecture: &'static str,
    /// Absolute paths of the directories the executable opens (mount points).
    pub volumes: Vec<String>,
    /// Recorded in the image history.
    pub created_by: String,
}

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The image archive's bytes.
pub fn image_archive(spec: &ImageSpec) -> Result<Vec<u8>, String> {
    let layer_tar = layer(spec).map_err(|e| format!("building the image layer: {e}"))?;
    let diff_id = digest(&layer_tar);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&layer_tar)
        .and_then(|_| gz.finish())
        .map_err(|e| format!("compressing the image layer: {e}"))
        .and_then(|layer_gz| {
            let volumes: serde_json::Map<String, serde_json::Value> = spec
                .volumes
                .iter()
                .map(|v| (v.clone(), json!({})))
                .collect();
            let mut config = json!({
                // Fixed, so that the same input gives the same image digest.
                "created": "1970-01-01T00:00:00Z",
                "architecture": spec.architecture,
                "os": "linux",
                "config": {
                    "Entrypoint": [format!("/{}", spec.name)],
                    "WorkingDir": "/",
                    "Volumes": volumes,
                },
                "rootfs": { "type": "layers", "diff_ids": [diff_id] },
                "history": [{ "created_by": spec.created_by }],
            });
            if spec.architecture == "arm64" {
                config["variant"] = json!("v8");
            }
            let config = json_bytes(&config);
            let manifest = json_bytes(&json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": descriptor(CONFIG_TYPE, &config),
                "layers": [descriptor(LAYER_TYPE, &layer_gz)],
            }));
            let mut manifest_desc = descriptor(MANIFEST_TYPE, &manifest);
            manifest_desc["annotations"] =
                json!({ "org.opencontainers.image.ref.name": format!("{}:latest", spec.name) });
            let index = json_bytes(&json!({
                "schemaVersion": 2,
                "mediaType": INDEX_TYPE,
                "manifests": [manifest_desc],
            }));
            layout_archive(&[&config, &manifest, &layer_gz], &index)
                .map_err(|e| format!("writing the image archive: {e}"))
        })
}

/// The layer: mount-point directories and the executable, paths relative to `/`.
fn layer(spec: &ImageSpec) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = Vec::new();
    for volume in &spec.volumes {
        // Every ancestor gets its own entry, parents first.
        let mut path = String::new();
        for part in volume.split('/').filter(|p| !p.is_empty()) {
            path.push_str(part);
            path.push('/');
            if !dirs.contains(&path) {
                dirs.push(path.clone());
            }
        }
    }
    for dir in &dirs {
        append(&mut tar, dir, tar::EntryType::Directory, 0o755, &[])?;
    }
    append(
        &mut tar,
        spec.name,
        tar::EntryType::Regular,
        0o755,
        spec.executable,
    )?;
    tar.into_inner()
}

/// The OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`) as a tar.
fn layout_archive(blobs: &[&[u8]], index: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append(
        &mut tar,
        "oci-layout",
        tar::EntryType::Regular,
        0o644,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    append(
        &mut tar,
        "index.json",
        tar::EntryType::Regular,
        0o644,
        index,
    )?;
    append(&mut tar, "blobs/", tar::EntryType::Directory, 0o755, &[])?;
    append(
        &mut tar,
        "blobs/sha256/",
        tar::EntryType::Directory,
        0o755,
        &[],
    )?;
    for blob in blobs {
        let hex = hex_digest(blob);
        append(
            &mut tar,
            &format!("blobs/sha256/{hex}"),
            tar::EntryType::Regular,
            0o644,
            blob,
        )?;
    }
    tar.into_inner()
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(data.len() as u64);
    tar.append_data(&mut header, path, data)
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    json!({ "mediaType": media_type, "digest": digest(blob), "size": blob.len() })
}

fn json_bytes(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON values always serialize")
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `sha256:<hex>`, the OCI digest of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex_digest(bytes))
}

/// The SHA-256 of `bytes` in lowercase hex (the module's, for the policy).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_digest(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut ar = tar::Archive::new(archive);
        for entry in ar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            out.push((path, data));
        }
        out
    }

    #[test]
    fn layout_is_complete_and_deterministic() {
        let spec = ImageSpec {
            executable: b"\x7fELF fake",
            name: "job",
            architecture: "arm64",
            volumes: vec!["/inputs".into(), "/data/out".into()],
            created_by: "wasmc test".into(),
        };
        let archive = image_archive(&spec).unwrap();
        assert_eq!(archive, image_archive(&spec).unwrap());
        let files = entries(&archive);
        let get = |name: &str| {
            files
                .iter()
                .find(|(p, _)| p == name)
                .unwrap_or_else(|| panic!("{name} missing"))
                .1
                .clone()
        };
        let index: serde_json::Value = serde_json::from_slice(&get("index.json")).unwrap();
        let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
        let blob = |digest: &str| {
            let data = get(&format!("blobs/sha256/{}", &digest["sha256:".len()..]));
            assert_eq!(
                super::digest(&data),
                digest,
                "blob content matches its name"
            );
            data
        };
        let manifest: serde_json::Value = serde_json::from_slice(&blob(manifest_digest)).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["config"]["Entrypoint"][0], "/job");
        assert!(config["config"]["Volumes"]["/data/out"].is_object());
        let layer_gz = blob(manifest["layers"][0]["digest"].as_str().unwrap());
        let mut layer = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&*layer_gz), &mut layer)
            .unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], super::digest(&layer));
        let layer_files: Vec<String> = entries(&layer).into_iter().map(|(p, _)| p).collect();
        assert_eq!(layer_files, ["inputs/", "data/", "data/out/", "job"]);
    }
}
