// The values systemd accepts for SuccessAction= and FailureAction= (src/core/emergency-action.c).
// A value goes into the unit file verbatim, so anything else (a typo, or a quoted command line value
// with a newline that would start a new unit setting) is refused here, before rendering.

/** The actions systemd 252, the oldest systemd netimport runs on, knows. */
const SYSTEMD_252_ACTIONS: readonly string[] = [
  "none",
  "reboot", "reboot-force", "reboot-immediate",
  "poweroff", "poweroff-force", "poweroff-immediate",
  "exit", "exit-force",
];

/**
 * Actions later systemd versions added. They are accepted because the initrd may well run a newer
 * systemd; a systemd that does not know one logs a warning for the unit file line and ignores it, so
 * the unit runs without the action (the unit file says so in a comment).
 */
const NEWER_ACTIONS: readonly string[] = [
  "soft-reboot", "soft-reboot-force",
  "kexec", "kexec-force",
  "halt", "halt-force", "halt-immediate",
];

const ALL_ACTIONS = new Set([...SYSTEMD_252_ACTIONS, ...NEWER_ACTIONS]);

/**
 * Whether systemd (any version from 252 on) accepts the value as an emergency action. Exact
 * match, as systemd's string table lookup is.
 *
 * @example isEmergencyAction("reboot") // true
 * @example isEmergencyAction("Reboot") // false
 */
export function isEmergencyAction(value: string): boolean {
  return ALL_ACTIONS.has(value);
}

/** Whether systemd 252 would ignore the (valid) action as unknown. */
export function isNewerThanSystemd252(action: string): boolean {
  return NEWER_ACTIONS.includes(action);
}

/** The rule, for log lines. */
export const EMERGENCY_ACTION_RULE = `expected one of ${[...SYSTEMD_252_ACTIONS, ...NEWER_ACTIONS].join(", ")}`;
