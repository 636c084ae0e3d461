/** `1 image`, `2 images`: counts as people read them, in reports, plans and the CLI. */
export const plural = (count: number, noun: string): string => `${count} ${noun}${count === 1 ? '' : 's'}`;
