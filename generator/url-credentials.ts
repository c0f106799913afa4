// Which URLs netimport can keep secret. Credentials in a URL's own userinfo are redacted in units and
// logs and read back by the runtime (pull-arguments.ts); text that looks like credentials elsewhere
// in a URL (`http://gateway/https://user:password@host/x`) would be redacted in log lines, which
// cannot tell it apart, but not in the unit, and the runtime could not restore it. Such URLs are
// refused instead of being shown one way here and another way there.
import { redactSecrets, redactUrl } from "./redact.ts";

/**
 * Whether the URL holds `scheme://…@` anywhere after its own authority.
 *
 * @example hasCredentialsOutsideUserinfo("https://u:p@h/x") // false: those are redacted as usual
 * @example hasCredentialsOutsideUserinfo("http://g/https://u:p@h/x") // true
 */
export function hasCredentialsOutsideUserinfo(url: string): boolean {
  const shown = redactUrl(url);
  return redactSecrets(shown) !== shown;
}

/** The rule, for log lines. */
export const CREDENTIALS_OUTSIDE_USERINFO_RULE = "holds a user name and password after its host (scheme://user:password@…), which netimport cannot keep out of units and logs";
