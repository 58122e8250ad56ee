//! Tokens a client hands back (UploadId, continuation token, Content-MD5) and hidden backend keys
//! read from a listing.

use proptest::prelude::*;

use super::{config, mutate};
use crate::backend::listing::{decode_token, encode_token};
use crate::core::keys::WrappedKey;
use crate::core::upload_token::{parse_backend_key, UploadMaterial, UploadToken};
use crate::front::s3::checksum::decode_content_md5;

fn material() -> impl Strategy<Value = UploadMaterial> {
    (any::<[u8; 32]>(), "[ -~]{1,255}", prop::collection::vec(any::<u8>(), 1..300))
        .prop_map(|(salt, kek_id, blob)| UploadMaterial { salt, wrapped: WrappedKey { kek_id, blob } })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn upload_ids_round_trip_and_refuse_garbage(
        id in "[ -~]{1,200}", m in material(), junk in "[A-Za-z0-9_=+/ -]{0,300}",
        op in any::<u8>(), at in any::<usize>(), with in any::<u8>(),
    ) {
        let token = UploadToken { backend_upload_id: id, material: m };
        let text = token.encode().unwrap();
        prop_assert_eq!(UploadToken::decode(&text).unwrap(), token.clone());
        let _ = UploadToken::decode(&junk);
        // A corrupted id decodes to some token or to an error, never a panic (the material inside is
        // authenticated later, when its wrapped key is opened under the object's identity).
        let changed = String::from_utf8_lossy(&mutate(text.as_bytes(), op, at, with)).into_owned();
        let _ = UploadToken::decode(&changed);
    }

    #[test]
    fn hidden_upload_keys_round_trip(key in "[ -~]{0,300}", m in material(), junk in "\\.blobseal/mpu/[ -~]{0,200}") {
        let backend_key = m.backend_key(&key).unwrap();
        let (k, back) = parse_backend_key(&backend_key).unwrap();
        prop_assert_eq!(k, key);
        prop_assert_eq!(back, m);
        let _ = parse_backend_key(&junk);
    }

    #[test]
    fn continuation_tokens_round_trip(last in "\\PC{0,200}", junk in "\\PC{0,200}") {
        prop_assert_eq!(decode_token(&encode_token(&last)).unwrap(), last);
        let _ = decode_token(&junk);
    }

    #[test]
    fn content_md5_is_16_bytes_or_nothing(text in "[A-Za-z0-9+/=]{0,40}|\\PC{0,40}") {
        if let Some(d) = decode_content_md5(&text) {
            prop_assert_eq!(d.len(), 16);
        }
    }
}
