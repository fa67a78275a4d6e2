import json

from pitchin_core.contracts.docs import ROOT, asyncapi, documents, main
from pitchin_core.contracts.registry import EVENT_TYPES


def test_committed_documents_match_the_models() -> None:
    assert main(["--check"]) == 0, "run `make contracts` and commit docs/contracts"


def test_every_event_type_has_a_schema_and_an_asyncapi_message() -> None:
    files = documents()
    spec = asyncapi()
    names = {m["name"] for m in spec["components"]["messages"].values()}
    assert names == set(EVENT_TYPES)
    for event_type, model in EVENT_TYPES.items():
        schema = json.loads(files[ROOT / "schemas" / f"{event_type}.json"])
        assert schema["title"] == event_type
        assert set(schema["required"]) >= {"federation_id"}
        assert set(schema["properties"]) == set(model.model_fields)
