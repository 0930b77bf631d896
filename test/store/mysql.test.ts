import { after, before } from "node:test";
import { MysqlStore } from "../../src/store/index.js";
import { startTestMysql, type TestMysql } from "../support/mariadb.js";
import { storeConformance } from "./conformance.js";

let mysql: TestMysql;
before(async () => {
  mysql = await startTestMysql();
});
after(async () => {
  await mysql?.stop();
});

storeConformance("mysql", {
  fresh: (name) => mysql.database(name),
  open: (url) => MysqlStore.open({ url, poolSize: 4, allowUnsafeDurability: false, log: () => {} }),
});
