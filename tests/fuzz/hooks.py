"""Schemathesis hooks for scripts/fuzz.sh: the one documented exception to the
negative-data check on the write routes.

A batch (`POST /batch/events`, `POST /batch/subscribers`, `POST /fetch/commands`) is
all-or-nothing per item, not per request, as Bento answers: an item that breaks a rule is
refused in a 200, counted in `failed` with its index and reason in `errors`, and the
other items are stored. So a request whose only invalid data is in its items is refused
item by item, not with a 4xx. This hook drops the check's failure for exactly that case:
the answer is a 200, every item that does not fit the item's schema is listed in
`errors`, and `results` + `failed` is the number of items sent. Every other failure is
kept: an invalid request (not an object, no list, an unknown key, too many items) must
still be a 4xx, and an invalid item that was stored is still reported.
"""

import json
import os

import jsonschema_rs
import schemathesis

# Operation: the key of the list in its body.
BATCHES = {
    ("POST", "/api/v1/batch/events"): "events",
    ("POST", "/api/v1/batch/subscribers"): "subscribers",
    ("POST", "/api/v1/fetch/commands"): "command",
}

_VALIDATORS = {}


def _item_validator(path, key):
    """A validator of one item of the operation's list, from the document fuzz.sh
    hands to Schemathesis (CORRAL_FUZZ_DOCUMENT)."""
    if path not in _VALIDATORS:
        with open(os.environ["CORRAL_FUZZ_DOCUMENT"], encoding="utf-8") as f:
            doc = json.load(f)
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        name = body["schema"]["$ref"].rsplit("/", 1)[1]
        schema = doc["components"]["schemas"][name]["properties"][key]
        if "$ref" in schema:
            schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        if "oneOf" in schema:
            # `command`: one command, or a list of them; an item is one command.
            schema = {"$ref": schema["oneOf"][0]["$ref"]}
        else:
            schema = schema["items"]
        schema = dict(schema, components=doc["components"])
        # Formats too (`date-time`), as Schemathesis checks them when it makes an
        # item invalid on purpose.
        _VALIDATORS[path] = jsonschema_rs.validator_for(schema, validate_formats=True)
    return _VALIDATORS[path]


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if failure.code != "ST201":  # negative data accepted
        return True
    key = BATCHES.get((case.method.upper(), case.path))
    if key is None or response.status_code != 200 or not isinstance(case.body, dict):
        return True
    items = case.body.get(key)
    if key == "command" and isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        return True
    try:
        answer = json.loads(response.content)
        refused = {e["index"] for e in answer["errors"]}
        counted = answer["results"] + answer["failed"]
    except (ValueError, KeyError, TypeError):
        return True
    validator = _item_validator(case.path, key)
    invalid = {i for i, item in enumerate(items) if not validator.is_valid(item)}
    return not (invalid and invalid <= refused and counted == len(items))
