export async function runAttach(argv: string[]): Promise<number> { console.log("attach", argv); return 0; }
