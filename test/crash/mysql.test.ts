import { after, before } from "node:test";
import { startTestMysql, type TestMysql } from "../support/mariadb.js";
import { crashSuite } from "./crash-suite.js";

let mysql: TestMysql;
before(async () => {
  mysql = await startTestMysql();
});
after(async () => {
  await mysql?.stop();
});
crashSuite("mysql", (name) => mysql.database(name));
