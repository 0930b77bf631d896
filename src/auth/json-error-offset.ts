/**
 * The offset of the first JSON syntax error in `text`, or -1 when it is valid JSON. V8 names an
 * offset for some errors only ("Unexpected token ']', …" has none), and a file error should
 * always name the line.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  // Each parser returns false at the error, leaving `i` on it.
  const literal = (word: string) => {
    let k = 0;
    while (k < word.length && text[i + k] === word[k]) k++;
    i += k;
    return k === word.length;
  };
  const string = (): boolean => {
    if (text[i] !== '"') return false;
    i++;
    while (i < text.length && text[i] !== '"') {
      const c = text.charCodeAt(i);
      if (c < 0x20) return false;
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) return false;
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? "x")) return false;
      }
      i++;
    }
    if (i >= text.length) return false;
    i++;
    return true;
  };
  const number = (): boolean => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (m === null) return false;
    i += m[0].length;
    return true;
  };
  const members = (close: string, member: () => boolean): boolean => {
    i++;
    ws();
    if (text[i] === close) {
      i++;
      return true;
    }
    for (;;) {
      ws();
      if (!member()) return false;
      ws();
      if (text[i] === close) {
        i++;
        return true;
      }
      if (text[i] !== ",") return false;
      i++;
    }
  };
  const value = (): boolean => {
    ws();
    const c = text[i];
    if (c === "{")
      return members("}", () => {
        if (!string()) return false;
        ws();
        if (text[i] !== ":") return false;
        i++;
        return value();
      });
    if (c === "[") return members("]", value);
    if (c === '"') return string();
    if (c === "t") return literal("true");
    if (c === "f") return literal("false");
    if (c === "n") return literal("null");
    return number();
  };
  if (!value()) return i;
  ws();
  return i < text.length ? i : -1;
}
