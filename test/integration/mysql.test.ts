import { after, before } from "node:test";
import { startTestMysql, type TestMysql } from "../support/mariadb.js";
import { brokerSuite } from "./suite.js";

let mysql: TestMysql;
before(async () => {
  mysql = await startTestMysql();
});
after(async () => {
  await mysql?.stop();
});

brokerSuite("mysql", (name) => mysql.database(name));
