export async function runBootUrl(argv: string[]): Promise<number> { console.log("boot-url", argv); return 0; }
