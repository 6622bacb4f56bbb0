//! The test vector printed in the draw-v1 specification, reproduced to the byte.

use govit_draw::{DrawInput, draw};

const INPUT: &str = r#"{"protocol": "govit-draw/v1", "draw_id": "d-1", "project_id": "p-1", "stage": "PRELIMINARY_REVIEW",
 "opened_at": "2026-11-28T05:00:00Z",
 "requirements": [{"category": "network", "count": 2, "alternates": 1},
                  {"category": "software", "count": 3, "alternates": 2}],
 "candidates": {"network": ["e01", "e02", "e03", "e04", "e05"],
                "software": ["e03", "e05", "e06", "e07", "e08", "e09", "e10"]},
 "exclusions": [{"category": "software", "expert_id": "e11", "reasons": ["EMPLOYER_CONFLICT"]}],
 "server_commitment": "4773d12e2371bb935b9a0f5439b4a1c3ad3f2414b86980f8418d1cfabdfadfef"}"#;

const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[test]
fn the_spec_vector_reproduces() {
    let input: DrawInput = serde_json::from_str(INPUT).unwrap();
    input.validate().unwrap();
    assert_eq!(
        hex::encode(input.hash().unwrap()),
        "97d3d41a4c62d9d77eb6965fb121dcd5994f116c9b687efe70094832150d0d47"
    );
    let secret: [u8; 32] = hex::decode(SECRET).unwrap().try_into().unwrap();
    assert_eq!(draw::commitment(&secret), input.server_commitment);
    let record = draw::execute(&input, &secret, "骰子 3-5-6").unwrap();
    assert_eq!(
        record.seed,
        "2fd8cf73668aa81789f3ba13e45e4c58055ba3966e8909e1a9c0147bb8652003"
    );
    let result = record.result.as_ref().unwrap();
    assert_eq!(result["network"].selected, ["e04", "e05"]);
    assert_eq!(result["network"].alternates, ["e02"]);
    assert_eq!(result["software"].selected, ["e09", "e07", "e03"]);
    assert_eq!(result["software"].alternates, ["e08", "e10"]);
    let json = serde_json::to_vec(&record).unwrap();
    assert!(draw::verify(&json).is_ok());
}
