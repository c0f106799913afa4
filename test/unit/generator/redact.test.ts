import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { redactSecrets, redactUrl, urlUserinfo } from "../../../generator/redact.ts";

describe("redact", () => {
  it("finds the userinfo of a URL, up to the authority's last @", () => {
    assert.equal(urlUserinfo("https://u:p@h/x"), "u:p");
    assert.equal(urlUserinfo("https://token@h/x"), "token");
    assert.equal(urlUserinfo("https://a@b:c@h/x"), "a@b:c");
    assert.equal(urlUserinfo("https://h/x@y"), undefined);
    assert.equal(urlUserinfo("https://h/?u=a@b"), undefined);
    assert.equal(urlUserinfo("file:///srv/a@b.raw"), undefined);
  });

  it("replaces the userinfo of a URL with ***", () => {
    assert.equal(redactUrl("http://user:secret@proxy:3128"), "http://***@proxy:3128");
    assert.equal(redactUrl("https://a@b:c@h/x@y"), "https://***@h/x@y");
    assert.equal(redactUrl("https://h/x@y"), "https://h/x@y");
  });

  it("redacts every URL in a text, and nothing else", () => {
    assert.equal(
      redactSecrets("HTTP 407 from http://u:p@proxy/ via https://t0k3n@mirror/a@b.raw; mail me@example.com"),
      "HTTP 407 from http://***@proxy/ via https://***@mirror/a@b.raw; mail me@example.com",
    );
    assert.equal(redactSecrets("cannot open HTTPS://U:P@H:1/x"), "cannot open HTTPS://***@H:1/x");
  });
});
