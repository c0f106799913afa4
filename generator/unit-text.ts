// Helpers for writing unit files: names, quoting and templates.

/**
 * systemd's unit_name_escape(): `/` becomes `-`; characters outside [A-Za-z0-9:_.] and a leading
 * `.` become `\xNN`.
 *
 * @example escapeUnitNamePart("my image") // "my\\x20image"
 */
export function escapeUnitNamePart(text: string): string {
  let out = "";
  const bytes = Buffer.from(text, "utf8");
  bytes.forEach((byte, index) => {
    const ch = String.fromCharCode(byte);
    if (ch === "/") out += "-";
    else if ((index === 0 && ch === ".") || !/[A-Za-z0-9:_.]/.test(ch)) out += `\\x${byte.toString(16).padStart(2, "0")}`;
    else out += ch;
  });
  return out;
}

/** Escapes `%` specifiers, which systemd expands in most settings. */
export function escapeSpecifiers(text: string): string {
  return text.replaceAll("%", "%%");
}

/**
 * One word of an `ExecStart=` line: bare when it is plain, else double-quoted with `\` and `"`
 * escaped; `%` and `$` are doubled so systemd expands neither specifiers nor variables. `*` means
 * nothing to systemd (it does not glob), so a redacted `https://***@host/` stays bare.
 */
export function quoteExecArgument(arg: string): string {
  const escaped = arg.replaceAll("%", "%%").replaceAll("$", "$$$$");
  if (/^[A-Za-z0-9_@%+=:,./-][A-Za-z0-9_@%+=:,./*-]*$/.test(arg)) return escaped;
  return `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/**
 * Fills a unit template: `{{NAME}}` is replaced by its value; a line holding nothing but a
 * placeholder whose value is empty disappears, and a multi-line value expands in place.
 */
export function fillTemplate(template: string, values: Record<string, string>): string {
  const lines: string[] = [];
  for (const line of template.split("\n")) {
    const only = /^\{\{([A-Z_]+)\}\}$/.exec(line);
    if (only) {
      const value = lookup(values, only[1]!);
      if (value !== "") lines.push(value);
      continue;
    }
    lines.push(line.replace(/\{\{([A-Z_]+)\}\}/g, (_, name: string) => lookup(values, name)));
  }
  return lines.join("\n");
}

function lookup(values: Record<string, string>, name: string): string {
  const value = values[name];
  if (value === undefined) throw new Error(`unit template uses {{${name}}}, which has no value`);
  return value;
}
