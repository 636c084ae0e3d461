/**
 * Case-sensitive glob (`*`: any run of characters, `?`: one character), compiled once, for the selector's name
 * patterns and the replication tag deny list.
 */
export function compileGlob(pattern: string): (value: string) => boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    's',
  );
  return (value) => re.test(value);
}
