/** The stores the suite can measure (the `--stores` names). */
export type StoreKind = "mysql" | "sqlite";
