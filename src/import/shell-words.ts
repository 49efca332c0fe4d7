/**
 * Splits a llama-swap `cmd` into argv the way llama-swap does (its SanitizeCommand): lines whose
 * first non-blank character is `#` are comments, a trailing backslash joins lines, then POSIX
 * shell word splitting (quotes and backslash escapes, no expansion: llama-swap runs no shell).
 */
export class ShellWordsError extends Error {}

export function stripCommentLines(cmd: string): string {
  return cmd
    .split("\n")
    .filter((line) => !line.trim().startsWith("#"))
    .join("\n");
}

export function splitCommand(cmd: string): string[] {
  const joined = stripCommentLines(cmd)
    .split("\n")
    .map((line) => (line.trim().endsWith("\\") ? line.trim().slice(0, -1) + " " : line))
    .join("\n");
  return splitWords(joined);
}

/** POSIX word splitting: '...' literal, "..." with \\ \" \$ \` escapes, \x outside quotes. */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new ShellWordsError("unterminated single quote");
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      inWord = true;
      i++;
      for (;;) {
        if (i >= text.length) throw new ShellWordsError("unterminated double quote");
        const c = text[i]!;
        if (c === '"') {
          i++;
          break;
        }
        if (c === "\\" && i + 1 < text.length && '\\"$`\n'.includes(text[i + 1]!)) {
          if (text[i + 1] !== "\n") word += text[i + 1];
          i += 2;
        } else {
          word += c;
          i++;
        }
      }
    } else if (ch === "\\") {
      if (i + 1 < text.length && text[i + 1] !== "\n") {
        word += text[i + 1];
        inWord = true;
      }
      i += 2;
    } else {
      word += ch;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
