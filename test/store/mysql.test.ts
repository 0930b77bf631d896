import { MysqlStore } from "../../src/store/index.js";
import { useTestMysql } from "../support/mariadb.js";
import { storeConformance } from "./conformance.js";

const mysql = useTestMysql();
storeConformance("mysql", {
  fresh: (name) => mysql().database(name),
  open: (url) => MysqlStore.open({ url, poolSize: 4, allowUnsafeDurability: false, log: () => {} }),
});
