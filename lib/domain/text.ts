/** `1 image`, `2 images`: counts as people read them, in reports, plans and the CLI. */
export const plural = (count: number, noun: string): string => `${count} ${noun}${count === 1 ? '' : 's'}`;

const USD = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2 });

/** `$0.40`, `$1,234.50`: every amount of money ami-dr shows (reports, CLI, demo) reads the same way. */
export const formatUsd = (amount: number): string => USD.format(amount);

/** `~$0.40/month`: an estimated monthly cost or saving. */
export const formatMonthly = (amount: number): string => `~${formatUsd(amount)}/month`;
