// Checks requests as a receiver in Node would: with the npm `standardwebhooks`
// package (pinned by package-lock.json), its Webhook(secret).verify(body,
// headers), unchanged. The integration tests (tests/api/webhooks.rs) hand it
// what their receiver got from Corral.
//
// Reads from stdin a JSON array of {"secret", "headers", "body"}: a webhook's
// secret, a request's headers and its raw body as received. Writes a JSON array
// with one answer each: {"payload": what verify returned} when the request is
// accepted, {"refused": "WebhookVerificationError: its message"} when not. Any
// other error ends the script with a non-zero status.
import { readFileSync } from "node:fs";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

const cases = JSON.parse(readFileSync(0, "utf8"));
const answers = cases.map(({ secret, headers, body }) => {
  try {
    return { payload: new Webhook(secret).verify(Buffer.from(body, "utf8"), headers) };
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    return { refused: `${error.name}: ${error.message}` };
  }
});
process.stdout.write(JSON.stringify(answers));
